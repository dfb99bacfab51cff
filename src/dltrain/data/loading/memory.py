"""The base of every built-in dataset: tensors in memory, batches by indexing.

A subclass only says how to read its files (``load``); splitting, normalisation and
batching live here once. Images stay ``uint8`` in memory (4x smaller than float) and
are scaled/normalised per batch as one tensor op after the batch reaches its device.
A subclass may return splits that index a memory-mapped record cache
(``data/storage/record_cache.py``) instead: their inputs are then the whole cache and a split
is an index array into it, never a copy.

Where the data lives on an accelerator (``data/loading/placement.py``): on the device when it
takes at most ``device_budget`` of the device's memory, else in host memory, each batch
gathered into pinned memory and copied asynchronously.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor

from dltrain.data.loading import placement
from dltrain.data.loading.arguments import Classes, Fraction, Shape, Size, Std
from dltrain.data.loading.augment import center_crop
from dltrain.data.loading.batches import TensorBatches
from dltrain.data.loading.record_batches import RecordBatches
from dltrain.data.loading.split import Split
from dltrain.data.storage import record_cache
from dltrain.errors import ConfigError, DataError

log = logging.getLogger(__name__)


class InMemoryDataModule(pl.LightningDataModule):
    """Loads a whole dataset into tensors once; serves train/val/test batches from them.

    Args:
        shape: expected input shape per sample, e.g. ``[1, 28, 28]`` (checked on load).
        num_classes: number of classes (checked against the labels on load).
        batch_size: training batch size (per process under DDP).
        eval_batch_size: batch size for validation and test.
        val_fraction: fraction of the training set held out for validation (0: none).
        seed: seed of the train/val split and of the batch order.
        mean, std: per-channel normalisation; ``None`` computes them from the
            training split (after scaling to [0, 1] for ``uint8`` images).
        augment: applied to normalised training batches (e.g. ``BatchAugment``).
        cache_shape: the stored shape per sample when larger than ``shape`` (e.g. 256 px
            stored, 224 px trained): training augmentation crops it to ``shape``
            (``augment=imagenet``), evaluation takes the center crop. ``None``: ``shape``.
        device_budget: on an accelerator, the dataset moves onto the device only when it
            takes at most this share of one device's memory; otherwise it stays in host
            memory and batches are copied from pinned memory without blocking.
    """

    #: Value that maps stored inputs to [0, 1] (255 for uint8 images).
    scale: float = 255.0
    #: Layout of normalised batches (``torch.channels_last`` with ``channels_last=true``).
    memory_format: torch.memory_format = torch.preserve_format

    def __init__(
        self,
        shape: Shape,
        num_classes: Classes,
        batch_size: Size = 64,
        eval_batch_size: Size = 512,
        val_fraction: Fraction = 0.1,
        seed: int | None = 0,
        mean: Sequence[float] | float | None = None,
        std: Sequence[Std] | Std | None = None,
        augment: Callable[[Tensor], Tensor] | None = None,
        cache_shape: Sequence[int] | None = None,
        device_budget: float = 0.25,
    ) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.num_classes = int(num_classes)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.val_fraction = float(val_fraction)
        self.seed = int(seed) if seed is not None else 0
        self._mean_cfg, self._std_cfg = mean, std
        self.augment = augment
        self._cache_shape = tuple(int(s) for s in cache_shape) if cache_shape else None
        self._check_cache_shape()
        self.device_budget = float(device_budget)
        self._pin = False  # batches gathered into pinned memory (CUDA, data on the host)
        self.train_set: Split | None = None
        self.val_set: Split | None = None
        self.test_set: Split | None = None
        self.mean: Tensor | None = None
        self.std: Tensor | None = None

    @property
    def cache_shape(self) -> tuple[int, ...]:
        """The stored shape per sample: ``data.cache_shape``, else ``data.shape``."""
        return self._cache_shape or self.shape

    # ---- what a subclass provides -------------------------------------------------
    def load(self) -> tuple[Split, Split]:
        """Return the full (train, test) splits; inputs shaped ``(N, *shape)``."""
        raise NotImplementedError

    # ---- an optional record cache for datasets read whole (MNIST, CIFAR) -----------------
    def cached(
        self,
        cache_dir: Path | None,
        sources: Sequence[Path],
        read: Callable[[], tuple[Split, Split]],
    ) -> tuple[Split, Split]:
        """``read()`` as is without ``cache_dir``; with it, its ``uint8`` splits go to a
        record cache keyed by ``sources`` (name, size, modification time) and come back
        memory-mapped, as image folders do (the first run reads and writes, later runs
        only map)."""
        if cache_dir is None:
            return read()
        listing = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in sources]
        shape = list(self.cache_shape)
        blob = json.dumps([record_cache.FORMAT_VERSION, type(self).__name__, shape, listing])
        key = hashlib.sha256(blob.encode()).hexdigest()[:24]
        if not record_cache.exists(cache_dir, key):
            train, test = read()
            if tuple(train.x.shape[1:]) != self.cache_shape or train.x.dtype != torch.uint8:
                return train, test  # not what the cache holds: setup's checks say why
            labels = torch.cat([train.y, test.y]).numpy()
            bounds = {"train": (0, len(train)), "test": (len(train), len(train) + len(test))}

            def fill(writer: record_cache.Writer) -> None:
                records = writer.records()
                records[: len(train)] = train.x.numpy()
                records[len(train) :] = test.x.numpy()
                records.flush()
                writer.mark(np.arange(len(labels)))

            opened = record_cache.build(cache_dir, key, self.cache_shape, labels, bounds, fill)
        else:
            opened = record_cache.open_cache(cache_dir / key)
        splits = [
            Split(opened.x, opened.y[a:b], torch.arange(a, b), opened.path)
            for a, b in (opened.splits["train"], opened.splits["test"])
        ]
        return splits[0], splits[1]

    # ---- Lightning hooks -------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train, test = self.load()
        self._check(train, "train")
        self._check(test, "test")
        self.train_set, self.val_set = self._split(train)
        self.test_set = test
        self.mean, self.std = self._stats(self.train_set)
        device = self._device()
        self._place(device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)

    def _place(self, device: torch.device) -> None:
        """On the device when the dataset fits ``device_budget`` (no per-step copies);
        else in host memory with batches gathered into pinned memory (CUDA)."""
        splits = [s for s in (self.train_set, self.val_set, self.test_set) if s is not None]
        self._pin = False
        if device.type == "cpu":
            return
        size = placement.dataset_bytes([t for s in splits for t in (s.x, s.y, s.index)])
        if not placement.fits_device(size, device, self.device_budget):
            self._pin = device.type == "cuda"
            log.info(
                "dataset (%.1f MB) stays in host memory: over data.device_budget=%s of %s",
                size / 1e6,
                self.device_budget,
                device,
            )
            return
        moved: dict[int, Tensor] = {}  # splits of one record cache share its tensor
        for s in splits:
            if id(s.x) not in moved:
                moved[id(s.x)] = s.x.to(device)
            s.x = moved[id(s.x)]
            s.y = s.y.to(device)
            s.index = s.index.to(device) if s.index is not None else None

    @property
    def has_val(self) -> bool:
        return self.val_fraction > 0

    def train_dataloader(self) -> TensorBatches:
        assert self.train_set is not None, "setup() first"
        rank, world = self._rank_world()
        if len(self.train_set.y) < world:
            raise ConfigError(
                f"{world} processes but only {len(self.train_set.y)} training samples: "
                "some processes would get no data",
                "use fewer processes (trainer.devices x trainer.num_nodes), or more data",
            )
        trainer = self.trainer
        return self._batches(
            self.train_set,
            self.batch_size,
            shuffle=True,
            seed=self.seed,
            rank=rank,
            world_size=world,
            epoch_fn=(lambda: trainer.current_epoch) if trainer is not None else None,
        )

    def val_dataloader(self) -> TensorBatches | list:
        if self.val_set is None:
            return []
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> TensorBatches:
        assert self.test_set is not None, "setup() first"
        return self._eval_loader(self.test_set)

    def predict_dataloader(self) -> TensorBatches:
        return self.test_dataloader()

    def on_after_batch_transfer(self, batch: tuple[Tensor, Tensor], dataloader_idx: int):
        x, y = batch
        x = self.normalize(x)
        if self.augment is not None and self.trainer is not None and self.trainer.training:
            x = self.augment(x)  # training batches only (see data/loading/augment.py)
        if self.cache_shape != self.shape:  # stored larger: evaluation's center crop
            x = center_crop(x, self.shape[1:])
        return x, y

    # ---- helpers -------------------------------------------------------------------------
    def normalize(self, x: Tensor) -> Tensor:
        """Scale stored inputs to [0, 1] floats and standardise per channel, as one
        multiply-add on a fresh float copy: ``x * (1 / (scale * std)) - mean / std``.
        This runs once per batch; with a single channel the factors are plain floats,
        which the dispatcher handles faster than broadcast tensors."""
        gain, shift = self._affine(x.dim())
        fmt = self.memory_format if x.dim() == 4 else torch.preserve_format
        return x.to(torch.float32, copy=True, memory_format=fmt).mul_(gain).add_(shift)

    def _affine(self, dims: int) -> tuple[Tensor | float, Tensor | float]:
        assert self.mean is not None and self.std is not None
        cached = getattr(self, "_affine_cache", None)
        # Kept with the mean/std tensors and scale it was made from (the tensors are
        # replaced, never changed in place, so identity says whether it still holds).
        if (
            cached is None
            or cached[0] is not self.mean
            or cached[1] is not self.std
            or cached[4] != self.scale
        ):
            gain = (1.0 / (self.std.double() * self.scale)).float()
            shift = (-self.mean.double() / self.std.double()).float()
            if gain.numel() == 1:  # read once here, not once a batch
                cached = (self.mean, self.std, float(gain), float(shift), self.scale)
            else:
                cached = (self.mean, self.std, gain, shift, self.scale)
            self._affine_cache = cached
        gain, shift = cached[2], cached[3]
        if isinstance(gain, float):
            return gain, shift
        view = (1, -1) + (1,) * (dims - 2)
        return gain.view(view), shift.view(view)

    def _eval_loader(self, split: Split) -> TensorBatches:
        rank, world = self._rank_world()
        # Padded shards: every sample counted once for any world size (batches.py).
        return self._batches(
            split, self.eval_batch_size, shuffle=False, rank=rank, world_size=world, pad=True
        )

    def _batches(self, split: Split, batch_size: int, **kwargs) -> TensorBatches:
        """In-memory splits on the batch's device: today's plain loader. Record-cache
        splits or pinned gathers: the loader that maps through the index."""
        if split.index is None and not self._pin:
            return TensorBatches(split.x, split.y, batch_size, **kwargs)
        return RecordBatches(split.x, split.y, split.index, batch_size, pin=self._pin, **kwargs)

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _device(self) -> torch.device:
        trainer = self.trainer
        if trainer is None:
            return torch.device("cpu")
        return trainer.strategy.root_device

    def _split(self, train: Split) -> tuple[Split, Split | None]:
        """Deterministic train/val split of the training set by ``seed``."""
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(
                f"data.val_fraction={self.val_fraction} is outside [0, 1)",
                "use 0 for no validation split, or e.g. 0.1",
            )
        n = len(train.y)
        n_val = int(round(n * self.val_fraction))
        if n_val == 0:
            return train, None
        gen = torch.Generator().manual_seed(self.seed)
        perm = torch.randperm(n, generator=gen)
        tr, va = perm[n_val:], perm[:n_val]
        return train.subset(tr), train.subset(va)

    def _check_cache_shape(self) -> None:
        stored, shape = self.cache_shape, self.shape
        if stored == shape:
            return
        if (
            len(stored) != len(shape)
            or stored[0] != shape[0]
            or any(a < b for a, b in zip(stored[1:], shape[1:], strict=True))
        ):
            raise ConfigError(
                f"data.cache_shape={list(stored)} cannot be cropped to data.shape={list(shape)}",
                "use the same channels and sizes at least data.shape's, or data.cache_shape=null",
            )

    def _stats(self, split: Split) -> tuple[Tensor, Tensor]:
        channels = self.shape[0]
        x = split.x
        if self._mean_cfg is not None and self._std_cfg is not None:
            mean = torch.as_tensor(self._mean_cfg, dtype=torch.float32).flatten()
            std = torch.as_tensor(self._std_cfg, dtype=torch.float32).flatten()
            return mean.expand(channels).clone(), std.expand(channels).clone()
        if x.dtype == torch.uint8:
            # Exact, from each channel's histogram of the 256 values: one fast pass
            # instead of a float64 copy of every pixel (seconds for MNIST).
            values = torch.arange(256, dtype=torch.float64) / self.scale
            hist = torch.zeros(channels, 256, dtype=torch.float64)
            for rows in split.chunks():
                hist += torch.stack(
                    [torch.bincount(rows[:, c].reshape(-1), minlength=256) for c in range(channels)]
                ).double()
            count = hist.sum(1)
            mean = hist @ values / count
            std = (hist @ (values * values) / count - mean * mean).clamp_min(1e-12).sqrt()
            return mean.float(), std.float()
        # Per-channel statistics of the training split, in chunks to bound memory.
        total = torch.zeros(channels, dtype=torch.float64)
        total_sq = torch.zeros(channels, dtype=torch.float64)
        count = 0
        for chunk in x.split(8192):
            c = chunk.double().transpose(0, 1).reshape(channels, -1) / self.scale
            total += c.sum(1)
            total_sq += (c * c).sum(1)
            count += c.shape[1]
        mean = total / count
        std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
        return mean.float(), std.float()

    def _check(self, split: Split, name: str) -> None:
        if tuple(split.x.shape[1:]) != self.cache_shape:
            key = "data.shape" if self.cache_shape == self.shape else "data.cache_shape"
            raise ConfigError(
                f"{type(self).__name__} {name} inputs have shape {list(split.x.shape[1:])}, "
                f"but {key} is {list(self.cache_shape)}",
                f"set {key}={list(split.x.shape[1:])}",
            )
        inputs = len(split.x) if split.index is None else len(split.index)
        if inputs != len(split.y):
            raise DataError(
                f"{name} split has {inputs} inputs but {len(split.y)} labels",
                "the dataset files are inconsistent; re-download or regenerate them",
            )
        if len(split.y) and (int(split.y.min()) < 0 or int(split.y.max()) >= self.num_classes):
            raise DataError(
                f"{name} labels range over [{int(split.y.min())}, {int(split.y.max())}], "
                f"outside [0, {self.num_classes - 1}] for data.num_classes={self.num_classes}",
                "fix the label files or set data.num_classes to the real class count",
            )
        if split.x.is_floating_point() and not torch.isfinite(split.x).all():
            raise DataError(
                f"{name} inputs contain NaN or infinite values",
                "clean the input data (every value must be finite)",
            )
