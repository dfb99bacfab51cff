"""Your own images in torchvision's ImageFolder layout, decoded once into a tensor cache.

    root/<class>/<image>                        train (test: test_fraction held out)
    root/train/<class>/<image>  [root/val/...]  [root/test/...]   explicit splits

Files are found with torchvision's ImageFolder rules (class = sub-folder name, sorted;
its image extensions), decoded with PIL and resized to ``data.shape``. The uint8
tensors are cached under ``cache_dir`` by a key over every file's path, size and
modification time (and the target shape), so a changed folder is read again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import Tensor

from dltrain.data.memory import InMemoryDataModule, Split
from dltrain.errors import ConfigError, DataError

#: Bump when the cached format or the decoding changes.
CACHE_VERSION = 1
#: The held-out test split is fixed (independent of the run's seed).
TEST_SPLIT_SEED = 0


class ImageFolderDataModule(InMemoryDataModule):
    """Images from ``root`` as ``uint8`` tensors of ``data.shape`` (1 channel: grayscale,
    3: RGB).

    Args:
        root: a folder of class folders, or of ``train/`` (+ ``val/``, ``test/``) folders.
        test_fraction: share of the training images held out for test when there is no
            ``test/`` folder (a ``val/`` folder replaces ``val_fraction`` likewise).
        cache_dir: where decoded tensors are cached (``None``: no cache).
    """

    def __init__(
        self,
        root: str,
        test_fraction: float = 0.2,
        cache_dir: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.test_fraction = float(test_fraction)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.classes: list[str] = []
        self._val_folder: Split | None = None

    def load(self) -> tuple[Split, Split]:
        dirs = self._split_dirs()
        files = self._files(dirs)
        key = self._cache_key(files)
        cached = self._read_cache(key)
        splits = cached if cached is not None else self._decode(files)
        if cached is None:
            self._write_cache(key, splits)
        train = splits["train"]
        test = splits.get("test")
        if test is None:
            train, test = _hold_out(train, self.test_fraction)
        self._val_folder = splits.get("val")
        return train, test

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

    # ---- decoding ----------------------------------------------------------------------
    def _decode(self, files: dict[str, list[tuple[str, int]]]) -> dict[str, Split]:
        return {name: self._decode_split(items) for name, items in files.items()}

    def _decode_split(self, items: list[tuple[str, int]]) -> Split:
        x = torch.empty((len(items), *self.shape), dtype=torch.uint8)
        for i, (path, _) in enumerate(items):
            x[i] = self._decode_one(path)
        y = torch.tensor([label for _, label in items], dtype=torch.long)
        return Split(x, y)

    def _decode_one(self, path: str) -> Tensor:
        from PIL import Image, UnidentifiedImageError
        from torchvision.transforms.v2.functional import pil_to_tensor, resize

        mode = {1: "L", 3: "RGB"}.get(self.shape[0])
        if mode is None:
            raise ConfigError(
                f"data.shape={list(self.shape)} asks for {self.shape[0]} channels",
                "use 1 (grayscale) or 3 (RGB) channels for image folders",
            )
        try:
            with Image.open(path) as img:
                pixels = pil_to_tensor(img.convert(mode))
        except (OSError, UnidentifiedImageError) as ex:
            raise DataError(
                f"cannot read image {path} ({type(ex).__name__})",
                "remove or replace the file",
            ) from ex
        return resize(pixels, list(self.shape[1:]), antialias=True)

    # ---- cache -----------------------------------------------------------------------
    def _cache_key(self, files: dict[str, list[tuple[str, int]]]) -> str:
        listing = []
        for name, items in sorted(files.items()):
            for path, label in items:
                stat = Path(path).stat()
                rel = str(Path(path).relative_to(self.root))
                listing.append([name, rel, label, stat.st_size, stat.st_mtime_ns])
        blob = json.dumps([CACHE_VERSION, list(self.shape), self.classes, listing])
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def _read_cache(self, key: str) -> dict[str, Split] | None:
        if self.cache_dir is None or not (self.cache_dir / f"{key}.pt").is_file():
            return None
        try:
            stored = torch.load(self.cache_dir / f"{key}.pt", weights_only=True)
        except Exception:  # noqa: BLE001 - a broken cache file is just decoded again
            return None
        return {name: Split(x, y) for name, (x, y) in stored.items()}

    def _write_cache(self, key: str, splits: dict[str, Split]) -> None:
        if self.cache_dir is None:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_dir / f"{key}.pt.tmp"
        torch.save({name: (s.x, s.y) for name, s in splits.items()}, tmp)
        tmp.replace(self.cache_dir / f"{key}.pt")  # atomic: readers never see half a file


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
    return Split(train.x[tr], train.y[tr]), Split(train.x[te], train.y[te])
