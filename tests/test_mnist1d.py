"""MNIST-1D is generated offline with the package's default arguments."""

from __future__ import annotations

import random

import numpy as np
import torch

from dltrain.data.sources.mnist1d import MNIST1DDataModule


def load(**kwargs) -> MNIST1DDataModule:
    dm = MNIST1DDataModule(shape=[1, 40], num_classes=10, val_fraction=0.0, **kwargs)
    dm.setup()
    return dm


def test_default_sizes_and_shuffled_positions_variant() -> None:
    np.random.seed(123)
    random.seed(123)
    before = np.random.get_state()[1].copy(), random.getstate()
    plain = load()
    assert np.array_equal(np.random.get_state()[1], before[0])  # the run's RNG untouched
    assert random.getstate() == before[1]
    assert plain.train_set.x.shape == (4000, 1, 40) and plain.test_set.x.shape == (1000, 1, 40)
    assert sorted(plain.train_set.y.unique().tolist()) == list(range(10))

    plain, shuffled = load(num_samples=500), load(num_samples=500, shuffle_positions=True)
    assert torch.equal(shuffled.train_set.y, plain.train_set.y)
    a, b = plain.train_set.x[:, 0], shuffled.train_set.x[:, 0]
    assert not torch.allclose(a, b)
    # One fixed permutation of the positions for every sequence (train and test).
    perm = [int((b[:, j, None] - a).abs().sum(0).argmin()) for j in range(40)]
    assert sorted(perm) == list(range(40))
    assert torch.allclose(b, a[:, perm], atol=1e-5)
    assert torch.allclose(shuffled.test_set.x[:, 0], plain.test_set.x[:, 0][:, perm], atol=1e-5)
