"""Batches of token ids, padded per batch, optionally bucketed by length.

Token ids are held as one ``(N, max_length)`` matrix plus each row's length, so a batch
is still one index operation (no per-sample Python): the rows, cut to the longest
sequence *in that batch* (dynamic padding). With ``bucket=True`` batches are built from
samples of similar length, which removes most of the padding a transformer would
otherwise compute on.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dltrain.data.loading.batches import TensorBatches

#: Training samples are sorted by length within pools of this many batches, then the
#: batches are shuffled: similar lengths together, yet a different mix every epoch.
POOL_BATCHES = 50


class PaddedTextBatches(TensorBatches):
    """Yield ``({"input_ids", "attention_mask"}, labels)`` batches.

    Args:
        ids: ``(N, max_length)`` token ids, rows right-padded with ``pad_id``.
        lengths: ``(N,)`` number of real tokens per row.
        y: ``(N,)`` labels.
        bucket: group samples of similar length into batches.
        Other arguments as ``TensorBatches`` (shuffling, seeding, DDP sharding, resume).
    """

    def __init__(
        self, ids: Tensor, lengths: Tensor, y: Tensor, batch_size: int, bucket: bool, **kw: Any
    ) -> None:
        super().__init__(ids, y, batch_size, **kw)
        self.lengths = lengths
        self.bucket = bucket

    def _order(self) -> Tensor:
        order = super()._order()
        if not self.bucket or len(order) == 0:
            return order
        if not self.shuffle:  # evaluation: order does not matter, padding does
            return order[self.lengths[order].argsort(stable=True)]
        pools = order.split(self.batch_size * POOL_BATCHES)
        order = torch.cat([p[self.lengths[p].argsort(stable=True)] for p in pools])
        full = len(order) // self.batch_size * self.batch_size
        batches = order[:full].view(-1, self.batch_size)
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch + 1)
        batches = batches[torch.randperm(len(batches), generator=gen)]
        return torch.cat([batches.flatten(), order[full:]])

    def _take(self, idx: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        lengths = self.lengths[idx]
        width = max(int(lengths.max()), 1)
        ids = self.x[idx, :width].long()
        mask = (torch.arange(width) < lengths[:, None]).long()
        return {"input_ids": ids, "attention_mask": mask}, self.y[idx]
