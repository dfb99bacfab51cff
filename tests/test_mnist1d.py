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


def test_generated_sets_are_cached_whole_and_read_back(tmp_path, monkeypatch, caplog) -> None:
    from dltrain.data.sources import mnist1d

    fresh = load(num_samples=300)
    cached = load(num_samples=300, cache_dir=str(tmp_path / "c"))
    files = sorted((tmp_path / "c").iterdir())
    assert [f.suffix for f in files] == [".npz"]  # one whole file, no temporary left
    assert files[0].stat().st_mode & 0o777 == 0o644  # others sharing the folder read it
    for split in ("train_set", "test_set"):
        for part in ("x", "y"):
            a, b = getattr(getattr(fresh, split), part), getattr(getattr(cached, split), part)
            assert a.dtype == b.dtype and torch.equal(a, b)

    def no_generation(args):
        raise AssertionError("generated again")

    monkeypatch.setattr(mnist1d, "_make", no_generation)
    again = load(num_samples=300, cache_dir=str(tmp_path / "c"))  # read back, not made
    assert torch.equal(again.train_set.x, fresh.train_set.x)
    monkeypatch.undo()
    # A damaged cache file (cut short by a full disk, say): said, generated, rewritten.
    files[0].write_bytes(files[0].read_bytes()[:1000])
    with caplog.at_level("WARNING"):
        again = load(num_samples=300, cache_dir=str(tmp_path / "c"))
    assert torch.equal(again.train_set.x, fresh.train_set.x)
    assert f"MNIST-1D cache {files[0]} not read" in caplog.text
    assert again.train_set.x.shape == (240, 1, 40) and files[0].stat().st_size > 1000
    # Other generation arguments are another file.
    load(num_samples=300, shuffle_positions=True, cache_dir=str(tmp_path / "c"))
    assert len(list((tmp_path / "c").iterdir())) == 2
    # A folder that cannot be written: generated, said, and the run goes on.
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    with caplog.at_level("WARNING"):
        dm = load(num_samples=300, cache_dir=str(blocked / "c"))
    assert torch.equal(dm.train_set.x, fresh.train_set.x)
    assert f"MNIST-1D not cached in {blocked / 'c'}" in caplog.text
