"""Where a dataset lives on an accelerator: on the device when it fits a budget.

A dataset on the device costs nothing per step (batches are gathered there), but every
process holds a whole copy on its device (DDP: one per GPU) next to the model, its
activations and the optimizer state. So it goes there only when it takes at most
``data.device_budget`` (a share, 0.25 by default) of one device's total memory;
otherwise it stays in host memory (or its memory-mapped cache), each batch is gathered
into pinned memory and copied without blocking (Lightning passes ``non_blocking=True``
for CUDA), so the copy overlaps the previous step's compute.

Jobs that run side by side on one GPU (a joblib multirun or sweep on ``trainer=gpu``)
each get their share of it: the builder passes ``device_budget`` divided by the number
of jobs that can be on that GPU at once (``runtime/trial_devices.py``), so together they
claim no more than one run would.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def dataset_bytes(tensors: Iterable[Tensor | None]) -> int:
    """Bytes of ``tensors``, each distinct one once (splits of one record cache share
    their input tensor)."""
    seen = {
        (t.data_ptr(), t.numel(), t.dtype): t.numel() * t.element_size()
        for t in tensors
        if t is not None
    }
    return sum(seen.values())


def device_memory(device: torch.device) -> int | None:
    """Total memory of ``device`` in bytes; ``None`` where torch cannot say."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "mps" and hasattr(torch.mps, "recommended_max_memory"):
        return int(torch.mps.recommended_max_memory())
    return None


def fits_device(nbytes: int, device: torch.device, budget: float) -> bool:
    """Whether a dataset of ``nbytes`` may live on ``device`` (unknown memory: no)."""
    total = device_memory(device)
    return total is not None and nbytes <= budget * total
