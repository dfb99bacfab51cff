"""The base of every built-in dataset: tensors in memory, batches by indexing.

A subclass only says how to read its files (``load``); splitting, normalisation and
batching live here once. Images stay ``uint8`` in memory (4x smaller than float) and
are scaled/normalised per batch as one tensor op after the batch reaches its device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lightning.pytorch as pl
import torch
from torch import Tensor

from dltrain.data.batches import TensorBatches
from dltrain.errors import ConfigError, DataError


@dataclass
class Split:
    """Inputs and integer labels of one split."""

    x: Tensor
    y: Tensor


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
    """

    #: Value that maps stored inputs to [0, 1] (255 for uint8 images).
    scale: float = 255.0

    def __init__(
        self,
        shape: Sequence[int],
        num_classes: int,
        batch_size: int = 64,
        eval_batch_size: int = 512,
        val_fraction: float = 0.1,
        seed: int = 0,
        mean: Sequence[float] | float | None = None,
        std: Sequence[float] | float | None = None,
        augment: Callable[[Tensor], Tensor] | None = None,
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
        self.train_set: Split | None = None
        self.val_set: Split | None = None
        self.test_set: Split | None = None
        self.mean: Tensor | None = None
        self.std: Tensor | None = None

    # ---- what a subclass provides -------------------------------------------------
    def load(self) -> tuple[Split, Split]:
        """Return the full (train, test) splits; inputs shaped ``(N, *shape)``."""
        raise NotImplementedError

    # ---- Lightning hooks -------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train, test = self.load()
        self._check(train, "train")
        self._check(test, "test")
        self.train_set, self.val_set = self._split(train)
        self.test_set = test
        self.mean, self.std = self._stats(self.train_set.x)
        device = self._device()
        if device.type != "cpu":  # resident on the accelerator: no per-step copies
            for s in (self.train_set, self.val_set, self.test_set):
                if s is not None:
                    s.x, s.y = s.x.to(device), s.y.to(device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)

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
        return TensorBatches(
            self.train_set.x,
            self.train_set.y,
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
            x = self.augment(x)  # training batches only (see data/augment.py)
        return x, y

    # ---- helpers -------------------------------------------------------------------------
    def normalize(self, x: Tensor) -> Tensor:
        """Scale stored inputs to [0, 1] floats and standardise per channel, as one
        multiply-add on a fresh float copy: ``x * (1 / (scale * std)) - mean / std``.
        This runs once per batch; with a single channel the factors are plain floats,
        which the dispatcher handles faster than broadcast tensors."""
        gain, shift = self._affine(x.dim())
        return x.to(torch.float32, copy=True).mul_(gain).add_(shift)

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
        return TensorBatches(
            split.x, split.y, self.eval_batch_size, shuffle=False, rank=rank, world_size=world
        )

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
        return Split(train.x[tr], train.y[tr]), Split(train.x[va], train.y[va])

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        channels = self.shape[0]
        if self._mean_cfg is not None and self._std_cfg is not None:
            mean = torch.as_tensor(self._mean_cfg, dtype=torch.float32).flatten()
            std = torch.as_tensor(self._std_cfg, dtype=torch.float32).flatten()
            return mean.expand(channels).clone(), std.expand(channels).clone()
        if x.dtype == torch.uint8:
            # Exact, from each channel's histogram of the 256 values: one fast pass
            # instead of a float64 copy of every pixel (seconds for MNIST).
            values = torch.arange(256, dtype=torch.float64) / self.scale
            hist = torch.stack(
                [torch.bincount(x[:, c].reshape(-1), minlength=256) for c in range(channels)]
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
        if tuple(split.x.shape[1:]) != self.shape:
            raise ConfigError(
                f"{type(self).__name__} {name} inputs have shape {list(split.x.shape[1:])}, "
                f"but data.shape is {list(self.shape)}",
                f"set data.shape={list(split.x.shape[1:])}",
            )
        if len(split.x) != len(split.y):
            raise DataError(
                f"{name} split has {len(split.x)} inputs but {len(split.y)} labels",
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
