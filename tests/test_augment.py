"""Batch augmentation: per-sample random ops, on training batches only."""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F

from dltrain.data.loading.augment import (
    BatchAugment,
    RandomResizedCrop,
    center_crop,
    cutout,
    random_crop,
    random_flip,
)
from dltrain.data.sources.synthetic import SyntheticDataModule


def test_random_crop_shifts_each_sample_within_the_padding() -> None:
    torch.manual_seed(0)
    x = torch.rand(64, 3, 8, 8) + 1.0  # no zeros of its own
    out = random_crop(x, 2)
    padded = F.pad(x, (2, 2, 2, 2))
    shifts = set()
    for i in range(len(x)):
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 8, dx : dx + 8])
        ]
        assert len(found) == 1
        shifts.add(found[0])
    assert len(shifts) > 10  # drawn per sample
    seq = torch.rand(16, 2, 10) + 1.0
    out1d = random_crop(seq, 3)
    assert out1d.shape == seq.shape and (out1d == 0).any()


def test_flip_reverses_about_half_the_samples_and_cutout_zeroes_a_square() -> None:
    torch.manual_seed(0)
    x = torch.rand(200, 1, 4, 6) + 1.0
    out = random_flip(x)
    flipped = [torch.equal(o, s.flip(-1)) for o, s in zip(out, x, strict=True)]
    kept = [torch.equal(o, s) for o, s in zip(out, x, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))
    assert 70 < sum(flipped) < 130
    holes = cutout(torch.ones(50, 3, 16, 16), 4)
    zeros = (holes == 0).all(1).sum((1, 2))  # a square, the same on every channel
    assert zeros.max() == 25 and zeros.min() >= 6  # 5x5 inside, clipped at the edges


def test_augmentation_applies_to_training_batches_only() -> None:
    dm = SyntheticDataModule(
        shape=[1, 6, 6], num_classes=2, augment=BatchAugment(crop_padding=2, flip=True)
    )
    dm.setup()
    batch = (dm.train_set.x[:32], dm.train_set.y[:32])
    for training, changed in ((False, False), (True, True)):
        dm.trainer = SimpleNamespace(training=training)
        x, _ = dm.on_after_batch_transfer(batch, 0)
        assert torch.equal(x, dm.normalize(batch[0])) is not changed


def test_random_resized_crop_draws_boxes_like_torchvision_and_flips_half() -> None:
    torch.manual_seed(0)
    crop = RandomResizedCrop([3, 24, 24])  # a full data.shape: the last two axes
    top, left, h, w = crop.boxes(4000, 32, 48, torch.device("cpu")).unbind(1)
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 32).all() and (left + w <= 48).all()
    # The same distribution of areas and aspect ratios as torchvision's sampler.
    from torchvision.transforms import RandomResizedCrop as TorchvisionCrop

    image = torch.empty(3, 32, 48)
    theirs = torch.tensor(
        [TorchvisionCrop.get_params(image, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(4000)]
    ).float()
    q = torch.tensor([0.1, 0.5, 0.9])
    th, tw = theirs[:, 2], theirs[:, 3]
    for ours_, theirs_ in ((h * w, th * tw), (w / h, tw / th)):
        assert torch.allclose(ours_.quantile(q), theirs_.quantile(q), rtol=0.08)
    # Whole-image crops of a square input: each sample comes back as is or mirrored.
    x = torch.rand(64, 3, 8, 8)
    out = RandomResizedCrop([8, 8], scale=(1, 1), ratio=(1, 1))(x)
    same = (out - x).abs().flatten(1).amax(1) < 1e-5
    mirrored = (out - x.flip(-1)).abs().flatten(1).amax(1) < 1e-5
    assert (same ^ mirrored).all() and 15 < int(mirrored.sum()) < 49
    # A box is the crop, resized: the top-left quarter of an image, doubled.
    image = torch.arange(16.0).view(1, 1, 4, 4)
    quarter = RandomResizedCrop([2, 2], flip=False)
    quarter.boxes = lambda n, h, w, device: torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    assert torch.allclose(quarter(image), image[..., :2, :2])


def test_a_larger_cache_shape_is_center_cropped_for_evaluation() -> None:
    x = torch.arange(2 * 6 * 6.0).view(1, 2, 6, 6)
    assert torch.equal(center_crop(x, (4, 2)), x[..., 1:5, 2:4])
    assert center_crop(x, (6, 6)) is x
    dm = SyntheticDataModule(
        shape=[1, 4, 4], cache_shape=[1, 6, 6], num_classes=2, augment=RandomResizedCrop([4, 4])
    )
    dm.setup()
    batch = (dm.train_set.x[:8], dm.train_set.y[:8])
    for training in (False, True):
        dm.trainer = SimpleNamespace(training=training)
        x, _ = dm.on_after_batch_transfer(batch, 0)
        assert x.shape == (8, 1, 4, 4)
        if not training:
            assert torch.equal(x, dm.normalize(batch[0])[..., 1:5, 1:5])
