"""scikit-learn's 1,797 real 8x8 handwritten digits: a dataset that needs no download."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from dltrain.data.loading.memory import InMemoryDataModule
from dltrain.data.loading.split import Split

#: The test split is fixed (independent of the run's seed) so runs stay comparable.
TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 0


class DigitsDataModule(InMemoryDataModule):
    """scikit-learn's digits (``load_digits``): pixel values 0..16, held as float32 in memory."""

    scale = 16.0
    #: Training samples (before the validation split): known before loading, so the
    #: processes-vs-samples check (dltrain.config.combinations) can run first.
    train_size = 1438

    def load(self) -> tuple[Split, Split]:
        images, target = load_digits()
        x = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1)
        y = torch.as_tensor(target, dtype=torch.long)
        gen = torch.Generator().manual_seed(TEST_SPLIT_SEED)
        perm = torch.randperm(len(y), generator=gen)
        n_test = int(round(len(y) * TEST_FRACTION))
        te, tr = perm[:n_test], perm[n_test:]
        return Split(x[tr], y[tr]), Split(x[te], y[te])


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 images (float64, 0..16) and their digits, as ``sklearn.datasets.
    load_digits`` returns them.

    Read here from the CSV scikit-learn ships, without importing scikit-learn: its
    ``sklearn.datasets`` imports scipy.stats and most of scikit-learn, 0.6-1.4 s of every
    digits run (the default experiment, ``debug=fast``) for a 60 KB file. Where the file
    is not where this scikit-learn keeps it, scikit-learn's own loader reads it."""
    data = _shipped_csv()
    if data is None:
        from sklearn.datasets import load_digits as sklearn_load_digits

        bunch = sklearn_load_digits()
        return bunch.images, bunch.target
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


def _shipped_csv() -> np.ndarray | None:
    """``sklearn/datasets/data/digits.csv.gz`` (found without running scikit-learn's
    code), or ``None`` where it is not there."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")
    if not path.is_file():
        return None
    with gzip.open(path, "rt", encoding="ascii") as f:
        return np.loadtxt(f, delimiter=",")
