"""Learning-rate warmup, as in the Hugging Face fine-tuning recipe."""

from __future__ import annotations

from typing import Any

import torch


def linear_warmup(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.1
) -> Any:
    """Linear warmup from 0 over the first ``warmup_fraction`` of the steps, then linear
    decay to 0 (``transformers.get_linear_schedule_with_warmup``). ``total_steps`` is
    filled in by the Classifier from the trainer, once it knows the data."""
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(
        optimizer, int(round(warmup_fraction * total_steps)), total_steps
    )
