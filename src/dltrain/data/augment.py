"""Training-batch augmentation as batched tensor ops on the batch's device.

Hand-written rather than torchvision.transforms.v2: those transforms draw one random
choice per call, so per-sample randomness would need a Python loop over the batch.
Here each op draws all samples' choices at once and applies them with one indexing op.
Works on images ``(N, C, H, W)`` and sequences ``(N, C, L)`` (the last axes).
"""

from __future__ import annotations

import torch
from torch import Tensor


class BatchAugment:
    """Random crop with zero padding (a random shift by up to ``crop_padding`` positions
    per spatial axis), horizontal flip (the last axis) with probability 0.5, and cutout
    (a ``cutout`` x ``cutout`` zeroed square), each drawn per sample. Applied to
    normalised batches, so zero is the dataset mean."""

    def __init__(self, crop_padding: int = 0, flip: bool = False, cutout: int = 0) -> None:
        self.crop_padding = int(crop_padding)
        self.flip = bool(flip)
        self.cutout = int(cutout)

    def __call__(self, x: Tensor) -> Tensor:
        if self.crop_padding > 0:
            x = random_crop(x, self.crop_padding)
        if self.flip:
            x = random_flip(x)
        if self.cutout > 0:
            x = cutout(x, self.cutout)
        return x

    def __repr__(self) -> str:
        return (
            f"BatchAugment(crop_padding={self.crop_padding}, flip={self.flip}, "
            f"cutout={self.cutout})"
        )


def random_crop(x: Tensor, padding: int) -> Tensor:
    """Pad every spatial axis by ``padding`` and cut each sample at its own offset."""
    spatial = x.shape[2:]
    padded = torch.nn.functional.pad(x, (padding, padding) * len(spatial))
    n = x.shape[0]
    index: list[Tensor] = [
        torch.arange(n, device=x.device).view(-1, *([1] * (len(spatial) + 1))),
        torch.arange(x.shape[1], device=x.device).view(1, -1, *([1] * len(spatial))),
    ]
    for axis, size in enumerate(spatial):
        offset = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
        pos = offset.view(-1, 1) + torch.arange(size, device=x.device)  # (N, size)
        shape = [n, 1] + [1] * len(spatial)
        shape[2 + axis] = size
        index.append(pos.view(shape))
    return padded[tuple(index)]


def random_flip(x: Tensor) -> Tensor:
    """Reverse the last axis of a random half of the samples."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip.view(-1, *([1] * (x.dim() - 1))), x.flip(-1), x)


def cutout(x: Tensor, size: int) -> Tensor:
    """Zero a ``size``-wide window (square for images) at a random centre per sample."""
    n = x.shape[0]
    window = torch.ones((n, 1) + tuple(x.shape[2:]), dtype=torch.bool, device=x.device)
    for axis, length in enumerate(x.shape[2:]):
        centre = torch.randint(0, length, (n, 1), device=x.device)
        pos = torch.arange(length, device=x.device).view(1, -1)
        inside = (pos - centre).abs() <= size // 2  # (N, length)
        shape = [n, 1] + [1] * (x.dim() - 2)
        shape[2 + axis] = length
        window = window & inside.view(shape)
    return x.masked_fill(window, 0.0)
