"""Training-batch augmentation as batched tensor ops on the batch's device.

Hand-written rather than torchvision.transforms.v2: those transforms draw one random
choice per call, so per-sample randomness would need a Python loop over the batch.
Here each op draws all samples' choices at once and applies them with one indexing op.
Works on images ``(N, C, H, W)`` and sequences ``(N, C, L)`` (the last axes);
``RandomResizedCrop`` on images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Ge
from torch import Tensor


class BatchAugment:
    """Random crop with zero padding (a random shift by up to ``crop_padding`` positions
    per spatial axis), horizontal flip (the last axis) with probability 0.5, and cutout
    (a ``cutout`` x ``cutout`` zeroed square), each drawn per sample. Applied to
    normalised batches, so zero is the dataset mean."""

    def __init__(
        self,
        crop_padding: Annotated[int, Ge(0)] = 0,
        flip: bool = False,
        cutout: Annotated[int, Ge(0)] = 0,
    ) -> None:
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


def center_crop(x: Tensor, size: Sequence[int]) -> Tensor:
    """The central ``size`` window of the trailing axes (a view; no-op when equal)."""
    spatial = x.shape[2:]
    if tuple(spatial) == tuple(size):
        return x
    index: list[slice] = [slice(None), slice(None)]
    for have, want in zip(spatial, size, strict=True):
        start = (have - want) // 2
        index.append(slice(start, start + want))
    return x[tuple(index)]


class RandomResizedCrop:
    """ImageNet training augmentation (Szegedy et al., 2015; torchvision's
    ``RandomResizedCrop`` + ``RandomHorizontalFlip``), drawn per sample and applied to
    the whole batch as one ``grid_sample`` on the batch's device.

    Each sample's crop covers a random ``scale`` share of its area with an aspect ratio
    drawn log-uniformly from ``ratio`` (10 tries per sample as torchvision, drawn at
    once; a sample with none valid takes the whole image, ratio clamped, as torchvision
    does), and is resized bilinearly to ``size``; ``flip`` mirrors half of them.

    Args:
        size: the output's spatial size; a full ``data.shape`` (channels first) works.
        scale, ratio: as torchvision's (defaults: the ImageNet recipe's).
        flip: random horizontal flip with probability 0.5.
    """

    TRIES = 10

    def __init__(
        self,
        size: Sequence[int],
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        flip: bool = True,
    ) -> None:
        self.size = tuple(int(s) for s in list(size)[-2:])
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.flip = bool(flip)

    def boxes(self, n: int, height: int, width: int, device: torch.device) -> Tensor:
        """``(n, 4)`` crop boxes ``(top, left, h, w)`` in pixels."""
        tries = (n, self.TRIES)
        area = height * width * torch.empty(tries, device=device).uniform_(*self.scale)
        log_ratio = torch.empty(tries, device=device).uniform_(
            math.log(self.ratio[0]), math.log(self.ratio[1])
        )
        aspect = log_ratio.exp()
        w = (area * aspect).sqrt().round()
        h = (area / aspect).sqrt().round()
        ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = ok.int().argmax(1, keepdim=True)  # the first valid try
        w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
        # No valid try: the whole image, its ratio clamped into `ratio` (torchvision).
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            fw, fh = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            fw, fh = round(height * self.ratio[1]), height
        else:
            fw, fh = width, height
        none = ~ok.any(1)
        w = torch.where(none, torch.full_like(w, fw), w)
        h = torch.where(none, torch.full_like(h, fh), h)
        top = (torch.rand(n, device=device) * (height - h + 1)).floor()
        left = (torch.rand(n, device=device) * (width - w + 1)).floor()
        return torch.stack([top, left, h, w], 1)

    def __call__(self, x: Tensor) -> Tensor:
        n, c, height, width = x.shape
        top, left, h, w = self.boxes(n, height, width, x.device).to(x.dtype).unbind(1)
        # The affine map from output coordinates in [-1, 1] to the crop's, in the input's
        # normalised coordinates (align_corners=False: pixel edges at -1 and 1).
        sx, sy = w / width, h / height
        cx = (left + w / 2) / width * 2 - 1
        cy = (top + h / 2) / height * 2 - 1
        if self.flip:
            sx = torch.where(torch.rand(n, device=x.device) < 0.5, -sx, sx)
        theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, sy, cy
        grid = F.affine_grid(theta, [n, c, *self.size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def __repr__(self) -> str:
        return (
            f"RandomResizedCrop(size={list(self.size)}, scale={list(self.scale)}, "
            f"ratio={list(self.ratio)}, flip={self.flip})"
        )
