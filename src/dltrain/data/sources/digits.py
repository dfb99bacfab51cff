"""scikit-learn's 1,797 real 8x8 handwritten digits: a dataset that needs no download."""

from __future__ import annotations

import torch

from dltrain.data.loading.memory import InMemoryDataModule
from dltrain.data.loading.split import Split

#: The test split is fixed (independent of the run's seed) so runs stay comparable.
TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 0


class DigitsDataModule(InMemoryDataModule):
    """``sklearn.datasets.load_digits``: pixel values 0..16, held as float32 in memory."""

    scale = 16.0
    #: Training samples (before the validation split): known before loading, so the
    #: processes-vs-samples check (dltrain.config.combinations) can run first.
    train_size = 1438

    def load(self) -> tuple[Split, Split]:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1)
        y = torch.as_tensor(bunch.target, dtype=torch.long)
        gen = torch.Generator().manual_seed(TEST_SPLIT_SEED)
        perm = torch.randperm(len(y), generator=gen)
        n_test = int(round(len(y) * TEST_FRACTION))
        te, tr = perm[:n_test], perm[n_test:]
        return Split(x[tr], y[tr]), Split(x[te], y[te])
