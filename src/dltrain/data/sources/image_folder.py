"""Your own images in torchvision's ImageFolder layout, decoded once into a record cache.

    root/<class>/<image>                        train (test: test_fraction held out)
    root/train/<class>/<image>  [root/val/...]  [root/test/...]   explicit splits

Files are found with torchvision's ImageFolder rules (class = sub-folder name, sorted;
its image extensions), decoded with PIL by ``data.workers`` processes and resized to
``data.cache_shape`` (default ``data.shape``). The ``uint8`` records go to a
memory-mapped cache under ``cache_dir`` (``data/storage/record_cache.py``) keyed by every
file's path, size and modification time and the stored shape, so a changed folder is
read again, a killed first pass continues where it stopped, and a run's memory does
not grow with the folder. The decoding runs in ``prepare_data`` (once per node under
DDP; the other ranks wait, then open the cache in ``setup`` by the key rank 0 sends, so
only rank 0 lists and stats the folder's files). Without ``cache_dir`` the records go to
a temporary folder, decoded once per node too: its local rank 0 decodes, every rank maps
it, then it is removed (the maps keep the data).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dltrain.data.loading.arguments import Fraction
from dltrain.data.loading.memory import InMemoryDataModule
from dltrain.data.loading.split import Split
from dltrain.data.storage import record_cache
from dltrain.data.storage.image_decode import fill_images
from dltrain.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: Bump when the cached format or the decoding changes.
CACHE_VERSION = 2
#: The held-out test split is fixed (independent of the run's seed).
TEST_SPLIT_SEED = 0
#: The records' name in a temporary cache: private to the run, so no key is needed.
PRIVATE = "records"


class ImageFolderDataModule(InMemoryDataModule):
    """Images from ``root`` as ``uint8`` tensors of ``data.shape`` (1 channel: grayscale,
    3: RGB).

    Args:
        root: a folder of class folders, or of ``train/`` (+ ``val/``, ``test/``) folders.
        test_fraction: share of the training images held out for test when there is no
            ``test/`` folder (a ``val/`` folder replaces ``val_fraction`` likewise).
        cache_dir: where decoded records are cached (``None``: a temporary cache, removed
            when the run ends).
        workers: decoding processes (``None``: one per core).
    """

    def __init__(
        self,
        root: str,
        test_fraction: Fraction = 0.2,
        cache_dir: str | None = None,
        workers: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.test_fraction = float(test_fraction)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.workers = int(workers) if workers else None
        self.classes: list[str] = []
        self._val_folder: Split | None = None
        self._prepared: record_cache.RecordSet | None = None
        if self.cache_shape[0] not in (1, 3):
            raise ConfigError(
                f"data.shape={list(self.shape)} asks for {self.shape[0]} channels",
                "use 1 (grayscale) or 3 (RGB) channels for image folders",
            )

    def prepare_data(self) -> None:
        """Decode into the cache here (Lightning: local rank 0 only, the others wait at
        a barrier); ``setup`` then opens it in every process."""
        if self.cache_dir is not None and self._prepared is None:
            self._prepared = self.records()

    def records(self, private_dir: Path | None = None) -> record_cache.RecordSet:
        """The folder's records, decoded into the cache first if they are not there.
        ``private_dir`` (or no ``cache_dir``): a folder only this run reads, so the
        records need no key, and no file is stat-ed for one."""
        private = private_dir is not None or self.cache_dir is None
        cache_dir = private_dir if private_dir is not None else self.cache_dir
        files = self._files(self._split_dirs())
        names = list(files)
        items = [item for name in names for item in files[name]]
        bounds, start = {}, 0
        for name in names:
            bounds[name] = (start, start + len(files[name]))
            start += len(files[name])
        labels = np.array([label for _, label in items], dtype=np.int64)
        log.info(
            "image folder %s: %d images in %d classes", self.root, len(items), len(self.classes)
        )
        paths = [path for path, _ in items]
        return record_cache.build(
            cache_dir,
            PRIVATE if private else self._cache_key(files),
            self.cache_shape,
            labels,
            bounds,
            lambda writer: fill_images(writer, paths, self.workers),
        )

    def load(self) -> tuple[Split, Split]:
        records = self._shared_records()
        splits = {
            name: Split(records.x, records.y[a:b], torch.arange(a, b), records.path)
            for name, (a, b) in records.splits.items()
        }
        if self.cache_dir is None:  # the folder is gone once mapped: stream from the map
            for split in splits.values():
                split.source = None
        train = splits["train"]
        test = splits.get("test")
        if test is None:
            train, test = _hold_out(train, self.test_fraction)
        self._val_folder = splits.get("val")
        return train, test

    # ---- one decode for every rank ------------------------------------------------------
    def _shared_records(self) -> record_cache.RecordSet:
        """The records every rank maps, decoded (and the folder listed) once."""
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return self._prepared or self.records()
        if self.cache_dir is None:
            return self._decode_once(trainer)
        # Rank 0 prepared the cache: the others open it by its key, without listing the
        # folder. A node whose own cache_dir lacks it (a node-local disk, files with
        # other times there) lists and decodes for itself.
        key = self._prepared.path.name if self._prepared is not None else None
        key, classes = trainer.strategy.broadcast((key, self.classes))
        if self._prepared is not None and self._prepared.path.name == key:
            return self._prepared
        if key is not None and record_cache.exists(self.cache_dir, key):
            self.classes = list(classes)
            return record_cache.open_cache(self.cache_dir / key)
        return self.records()

    def _decode_once(self, trainer: Any) -> record_cache.RecordSet:
        """``cache_dir=null`` under DDP: each node's local rank 0 decodes into a temporary
        folder all ranks agree on (rank 0 names it), every rank maps it, then it goes."""
        strategy = trainer.strategy
        token = strategy.broadcast(uuid.uuid4().hex)
        folder = Path(tempfile.gettempdir()) / f"dltrain-records-{token}"
        decoder = trainer.local_rank == 0
        try:
            if decoder:
                self.records(private_dir=folder)
            strategy.barrier("image folder decoded")
            opened = record_cache.open_cache(folder / PRIVATE)
            self.classes = list(strategy.broadcast(self.classes))
            strategy.barrier("image folder mapped")
        finally:
            if decoder:
                shutil.rmtree(folder, ignore_errors=True)
        return opened

    def _split(self, train: Split) -> tuple[Split, Split | None]:
        if self._val_folder is not None:  # a val/ folder replaces the random split
            return train, self._val_folder
        return super()._split(train)

    # ---- finding files ------------------------------------------------------------
    def _split_dirs(self) -> dict[str, Path]:
        if not self.root.is_dir():
            raise DataError(
                f"image folder {self.root} does not exist",
                "set data.root to a folder of class folders (root/<class>/<image>)",
            )
        if not (self.root / "train").is_dir():
            return {"train": self.root}
        found = {"train": self.root / "train"}
        for name in ("val", "test"):
            if (self.root / name).is_dir():
                found[name] = self.root / name
        return found

    def _files(self, dirs: dict[str, Path]) -> dict[str, list[tuple[str, int]]]:
        from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

        try:
            self.classes, class_to_idx = find_classes(dirs["train"])
        except FileNotFoundError:
            raise DataError(
                f"{dirs['train']} holds no class folders",
                "put each class's images in its own folder: <root>/<class>/<image>",
            ) from None
        if len(self.classes) != self.num_classes:
            raise ConfigError(
                f"{dirs['train']} has {len(self.classes)} class folders "
                f"({', '.join(self.classes[:10])}) but data.num_classes={self.num_classes}",
                f"set data.num_classes={len(self.classes)}",
            )
        out = {}
        for name, folder in dirs.items():
            try:
                out[name] = make_dataset(
                    folder, class_to_idx, IMG_EXTENSIONS, allow_empty=name != "train"
                )
            except FileNotFoundError as ex:
                raise DataError(
                    f"{folder}: {str(ex).splitlines()[0]}",
                    f"add images ({', '.join(IMG_EXTENSIONS)}) to every class folder",
                ) from None
        return out

    # ---- cache -----------------------------------------------------------------------
    def _cache_key(self, files: dict[str, list[tuple[str, int]]]) -> str:
        listing = []
        for name, items in sorted(files.items()):
            for path, label in items:
                stat = Path(path).stat()
                rel = str(Path(path).relative_to(self.root))
                listing.append([name, rel, label, stat.st_size, stat.st_mtime_ns])
        blob = json.dumps([CACHE_VERSION, list(self.cache_shape), self.classes, listing])
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _hold_out(train: Split, fraction: float) -> tuple[Split, Split]:
    """A fixed ``fraction`` of ``train`` as the test split."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(
            f"data.test_fraction={fraction} is outside (0, 1) and there is no test/ folder",
            "use e.g. 0.2, or add a test/ folder next to train/",
        )
    n = len(train.y)
    n_test = max(1, int(round(n * fraction)))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(TEST_SPLIT_SEED))
    te, tr = perm[:n_test], perm[n_test:]
    return train.subset(tr), train.subset(te)
