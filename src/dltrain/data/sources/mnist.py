"""MNIST and Fashion-MNIST from torchvision's on-disk layout (``<root>/MNIST/raw/``)."""

from __future__ import annotations

from dltrain.data.loading.split import Split
from dltrain.data.sources.torchvision_layout import TorchvisionDataModule
from dltrain.data.storage import idx
from dltrain.data.storage.files import check_files, load_torchvision

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class MNISTDataModule(TorchvisionDataModule):
    """MNIST digits, 60,000 train + 10,000 test 28x28 ``uint8`` images."""

    #: torchvision dataset class name; also the folder name under ``data_dir``.
    dataset = "MNIST"

    def load(self) -> tuple[Split, Split]:
        raw = self.data_dir / self.dataset / "raw"
        check_files(raw, RAW_FILES, self.dataset, self.data_dir)
        for prefix in ("train", "t10k"):  # clear errors for damaged files
            idx.check_pair(
                raw / f"{prefix}-images-idx3-ubyte",
                raw / f"{prefix}-labels-idx1-ubyte",
                self.num_classes,
            )
        return self.cached(self.cache_dir, [raw / name for name in RAW_FILES], self._read)

    def _read(self) -> tuple[Split, Split]:
        splits = []
        for train in (True, False):
            ds = load_torchvision(self.dataset, self.data_dir, train=train, download=False)
            splits.append(Split(ds.data.unsqueeze(1).contiguous(), ds.targets.long()))
        return splits[0], splits[1]


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST: the same layout and sizes as MNIST, under ``FashionMNIST/raw``."""

    dataset = "FashionMNIST"
