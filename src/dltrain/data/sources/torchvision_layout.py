"""The shared part of datasets in torchvision's on-disk layout (MNIST, Fashion-MNIST,
CIFAR-10): where the files are, and ``data.download=true`` fetching them through
torchvision. How each one's files are read stays in its own module."""

from __future__ import annotations

from pathlib import Path

from dltrain.data.loading.memory import InMemoryDataModule
from dltrain.data.storage.files import load_torchvision


class TorchvisionDataModule(InMemoryDataModule):
    """A dataset under ``data_dir`` in torchvision's layout; subclasses name it."""

    #: torchvision dataset class name (``torchvision.datasets.<dataset>``).
    dataset = ""

    def __init__(
        self, data_dir: str, download: bool = False, cache_dir: str | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.data_dir = Path(data_dir)
        self.download = bool(download)
        self.cache_dir = Path(cache_dir) if cache_dir else None

    def prepare_data(self) -> None:
        if self.download:
            load_torchvision(self.dataset, self.data_dir, train=True, download=True)
            load_torchvision(self.dataset, self.data_dir, train=False, download=True)
