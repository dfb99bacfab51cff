"""Datasets load from real on-disk formats; the batch loader shards and resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import make_cifar10, make_mnist
from dltrain.data.loading.batches import TensorBatches
from dltrain.data.sources import digits
from dltrain.data.sources.cifar import CIFAR10DataModule
from dltrain.data.sources.digits import DigitsDataModule
from dltrain.data.sources.mnist import FashionMNISTDataModule, MNISTDataModule
from dltrain.data.sources.synthetic import SyntheticDataModule
from dltrain.errors import ConfigError, DataError


def test_mnist_reads_idx_files(tmp_path: Path) -> None:
    root = make_mnist(tmp_path, n_train=40, n_test=20)
    dm = MNISTDataModule(data_dir=str(root), shape=[1, 28, 28], num_classes=10, val_fraction=0.25)
    dm.setup()
    assert dm.train_set.x.shape == (30, 1, 28, 28) and dm.train_set.x.dtype == torch.uint8
    assert dm.val_set.x.shape == (10, 1, 28, 28)
    assert dm.test_set.y.tolist() == [i % 10 for i in range(20)]
    x, y = next(iter(dm.test_dataloader()))
    x, _ = dm.on_after_batch_transfer((x, y), 0)
    assert x.dtype == torch.float32
    # Normalised with statistics of the training split: about zero mean there.
    train_x = dm.normalize(dm.train_set.x)
    assert abs(float(train_x.mean())) < 1e-4 and abs(float(train_x.std()) - 1) < 1e-2


def test_fashion_mnist_uses_its_own_folder(tmp_path: Path) -> None:
    root = make_mnist(tmp_path, folder="FashionMNIST")
    dm = FashionMNISTDataModule(data_dir=str(root), shape=[1, 28, 28], num_classes=10)
    dm.setup()
    assert len(dm.test_set.y) == 20


def test_split_is_deterministic_by_seed(tmp_path: Path) -> None:
    root = make_mnist(tmp_path)

    def val_labels(seed: int) -> list[int]:
        dm = MNISTDataModule(data_dir=str(root), shape=[1, 28, 28], num_classes=10, seed=seed)
        dm.setup()
        return dm.val_set.y.tolist() + dm.train_set.y[:10].tolist()

    assert val_labels(1) == val_labels(1)
    assert val_labels(1) != val_labels(2)


def test_mnist_missing_files_names_them(tmp_path: Path) -> None:
    dm = MNISTDataModule(data_dir=str(tmp_path), shape=[1, 28, 28], num_classes=10)
    with pytest.raises(DataError) as err:
        dm.setup()
    text = str(err.value)
    assert "MNIST not found: expected train-images-idx3-ubyte" in text
    assert str(tmp_path / "MNIST" / "raw") in text
    assert "paths.data_dir" in text and "data.download=true" in text


def test_cifar10_reads_pickles(tmp_path: Path) -> None:
    root = make_cifar10(tmp_path)
    dm = CIFAR10DataModule(data_dir=str(root), shape=[3, 32, 32], num_classes=10, val_fraction=0.2)
    dm.setup()
    assert dm.train_set.x.shape == (40, 3, 32, 32)
    assert dm.test_set.x.shape == (10, 3, 32, 32)
    assert dm.mean.shape == (3,)


def test_normalize_is_per_channel_standardisation_and_copies(tmp_path: Path) -> None:
    root = make_cifar10(tmp_path)
    dm = CIFAR10DataModule(data_dir=str(root), shape=[3, 32, 32], num_classes=10, val_fraction=0.2)
    dm.setup()
    x = dm.train_set.x[:8]
    expected = (x.double() / 255 - dm.mean.double().view(1, 3, 1, 1)) / dm.std.double().view(
        1, 3, 1, 1
    )
    assert torch.allclose(dm.normalize(x).double(), expected, atol=1e-5)
    # Float inputs (stored already scaled) are copied, never changed in place.
    dm.scale = 1.0
    stored = x.float() / 255
    before = stored.clone()
    assert torch.allclose(dm.normalize(stored).double(), expected, atol=1e-5)
    assert torch.equal(stored, before)
    # New statistics take effect (the cached factors follow the tensors).
    dm.mean, dm.std = torch.zeros(3), torch.ones(3)
    assert torch.equal(dm.normalize(stored), stored)


def test_digits_has_fixed_test_split() -> None:
    a = DigitsDataModule(shape=[1, 8, 8], num_classes=10, seed=1)
    b = DigitsDataModule(shape=[1, 8, 8], num_classes=10, seed=2)
    a.setup()
    b.setup()
    assert torch.equal(a.test_set.y, b.test_set.y)
    assert len(a.test_set.y) == 359
    assert not torch.equal(a.val_set.y, b.val_set.y)


def test_digits_are_scikit_learns_read_without_importing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, target = digits.load_digits()  # read from the CSV scikit-learn ships
    assert images.shape == (1797, 8, 8) and images.dtype == bunch.images.dtype
    assert (images == bunch.images).all() and (target == bunch.target).all()
    assert target.dtype == bunch.target.dtype
    # Where this scikit-learn keeps the file elsewhere, its own loader reads it.
    monkeypatch.setattr(digits, "_shipped_csv", lambda: None)
    again, target_again = digits.load_digits()
    assert (again == images).all() and (target_again == target).all()


def test_shape_mismatch_is_a_config_error() -> None:
    dm = SyntheticDataModule(shape=[1, 8, 8], num_classes=3)
    dm.shape = (3, 8, 8)
    dm._mean_cfg = None
    with pytest.raises(ConfigError) as err:
        SyntheticDataModule.setup(_with_load_shape(dm, (1, 8, 8)))
    assert str(err.value) == (
        "SyntheticDataModule train inputs have shape [1, 8, 8], but data.shape is [3, 8, 8] — "
        "set data.shape=[1, 8, 8]"
    )


def _with_load_shape(dm: SyntheticDataModule, shape: tuple[int, ...]) -> SyntheticDataModule:
    real = SyntheticDataModule(shape=list(shape), num_classes=dm.num_classes)
    dm.load = real.load  # inputs of one shape, while data.shape says another
    return dm


def test_batches_shard_equally_and_disjointly_across_ranks() -> None:
    x = torch.arange(103).float().unsqueeze(1)
    y = torch.arange(103)
    seen = []
    for rank in range(2):
        loader = TensorBatches(x, y, batch_size=8, shuffle=True, seed=3, rank=rank, world_size=2)
        labels = torch.cat([b[1] for b in loader])
        assert len(labels) == 51
        seen.append(set(labels.tolist()))
    assert not seen[0] & seen[1]


def test_batches_order_depends_on_epoch_and_resumes_mid_epoch() -> None:
    x, y = torch.arange(40).float().unsqueeze(1), torch.arange(40)
    loader = TensorBatches(x, y, batch_size=4, shuffle=True, seed=0)
    epoch0 = [b[1].tolist() for b in loader]
    epoch1 = [b[1].tolist() for b in loader]
    assert epoch0 != epoch1 and sorted(sum(epoch0, [])) == list(range(40))
    resumed = TensorBatches(x, y, batch_size=4, shuffle=True, seed=0)
    resumed.load_state_dict({"epoch": 1, "next_batch": 3})
    assert [b[1].tolist() for b in resumed] == epoch1[3:]
