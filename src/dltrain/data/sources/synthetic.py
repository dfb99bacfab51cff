"""Random inputs of any shape and class count, for smoke tests and benchmarks."""

from __future__ import annotations

import torch

from dltrain.data.loading.arguments import Size
from dltrain.data.loading.memory import InMemoryDataModule
from dltrain.data.loading.split import Split


class SyntheticDataModule(InMemoryDataModule):
    """Gaussian inputs labelled by a fixed random linear teacher (learnable, not noise)."""

    scale = 1.0

    def __init__(self, num_train: Size = 512, num_test: Size = 256, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_train = int(num_train)
        self.num_test = int(num_test)

    def load(self) -> tuple[Split, Split]:
        gen = torch.Generator().manual_seed(self.seed)
        n = self.num_train + self.num_test
        x = torch.randn((n, *self.cache_shape), generator=gen)
        teacher = torch.randn(x[0].numel(), self.num_classes, generator=gen)
        y = (x.flatten(1) @ teacher).argmax(1)
        tr, te = slice(0, self.num_train), slice(self.num_train, n)
        return Split(x[tr], y[tr]), Split(x[te], y[te])
