"""CIFAR-10 from torchvision's on-disk layout (``<root>/cifar-10-batches-py/``).

torchvision downloads the files (``data.download=true``), but we read the batches
ourselves: torchvision's reader insists on the official md5 sums (so it refuses any
other copy or a test fixture) and unpickles without restrictions. Ours accepts only
the types a CIFAR batch holds (dicts, lists, numpy arrays).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from dltrain.data.loading.split import Split
from dltrain.data.sources.torchvision_layout import TorchvisionDataModule
from dltrain.data.storage.files import check_files
from dltrain.errors import DataError

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
NUM_CLASSES = 10

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: no code from the file runs."""

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR batch file: ``(N, 3, 32, 32)`` uint8 images and ``(N,)`` labels."""
    try:
        with open(path, "rb") as f:
            entry = _BatchUnpickler(f, encoding="latin1").load()
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
        images = data.reshape(-1, 3, 32, 32)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, OSError) as ex:
        raise DataError(
            f"{path} is not a readable CIFAR batch ({type(ex).__name__}: {ex})",
            "re-download CIFAR-10 (data.download=true) or replace the file",
        ) from ex
    if len(images) != len(labels):
        raise DataError(
            f"{path} holds {len(images)} images but {len(labels)} labels",
            "the file is truncated or corrupt; re-download CIFAR-10",
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataError(
            f"{path} has labels in [{labels.min()}, {labels.max()}], outside CIFAR-10's 0..9",
            "the file is corrupt or not CIFAR-10; re-download it",
        )
    return images, labels


class CIFAR10DataModule(TorchvisionDataModule):
    """CIFAR-10: 50,000 train + 10,000 test 32x32 RGB ``uint8`` images."""

    dataset = "CIFAR10"

    def load(self) -> tuple[Split, Split]:
        folder = self.data_dir / FOLDER
        check_files(folder, TRAIN_FILES + TEST_FILES, "CIFAR10", self.data_dir)
        return self.cached(
            self.cache_dir,
            [folder / name for name in TRAIN_FILES + TEST_FILES],
            lambda: (self._read(folder, TRAIN_FILES), self._read(folder, TEST_FILES)),
        )

    @staticmethod
    def _read(folder: Path, names: tuple[str, ...]) -> Split:
        parts = [read_batch(folder / n) for n in names]
        x = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        return Split(x, y)
