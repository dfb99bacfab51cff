"""Learning-rate warmup, as in the Hugging Face fine-tuning recipe."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR


def linear_warmup(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.1
) -> LambdaLR:
    """Linear warmup from 0 over the first ``warmup_fraction`` of the steps, then linear
    decay to 0. ``total_steps`` is filled in by the Classifier from the trainer, once it
    knows the data. The same factor as ``transformers.get_linear_schedule_with_warmup``,
    written out so that a scheduler any model can use does not need the text extra."""
    warmup = int(round(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return LambdaLR(optimizer, factor)
