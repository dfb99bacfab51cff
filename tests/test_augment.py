"""Batch augmentation: per-sample random ops, on training batches only."""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F

from dltrain.data.augment import BatchAugment, cutout, random_crop, random_flip
from dltrain.data.synthetic import SyntheticDataModule


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
