"""Batches of a split that is an index into a larger record array (a memory-mapped
cache), or gathered into pinned memory for an asynchronous copy to a CUDA device.

A subclass of the in-memory loader: the order, sharding and resume state are
``TensorBatches``'; only the gather differs. The batch is still one ``index_select``,
of the cache rows the split's index names.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dltrain.data.loading.batches import TensorBatches


class RecordBatches(TensorBatches):
    """``TensorBatches`` whose sample ``i`` is row ``index[i]`` of ``x``.

    Args:
        x: the whole record array ``(N, ...)``; ``y``: the split's labels.
        index: rows of ``x`` this split holds (``None``: all, in order).
        pin: gather each batch into pinned (page-locked) host memory, so the copy to
            a CUDA device does not block; the caching host allocator reuses a block
            only once the copy that read it has finished.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        index: Tensor | None,
        batch_size: int,
        pin: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(x, y, batch_size, **kwargs)
        self.index = index
        self.pin = pin

    def _take(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        rows = idx if self.index is None else self.index.index_select(0, idx)
        if not self.pin:
            return self.x.index_select(0, rows), self.y.index_select(0, idx)
        x = torch.empty((len(rows), *self.x.shape[1:]), dtype=self.x.dtype, pin_memory=True)
        y = torch.empty((len(idx),), dtype=self.y.dtype, pin_memory=True)
        return (
            torch.index_select(self.x, 0, rows, out=x),
            torch.index_select(self.y, 0, idx, out=y),
        )
