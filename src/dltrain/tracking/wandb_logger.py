"""Weights & Biases through Lightning's ``WandbLogger``, one W&B run per dl-train run.

Offline by default (``configs/logger/wandb.yaml``): no account or network; the run lands
in ``<run dir>/wandb/offline-run-*`` and ``wandb sync`` uploads it later. No API key is
read or written here: online use relies on the user's own ``wandb login``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lightning.pytorch.loggers import WandbLogger


def wandb_logger(
    trial: Mapping[str, Any] | None = None,
    name: str | None = None,
    group: str | None = None,
    tags: Sequence[str] = (),
    **kwargs: Any,
) -> WandbLogger:
    """A ``WandbLogger`` (``kwargs`` are its arguments, and ``wandb.init``'s); in a sweep
    trial (``trial`` = ``cfg.trial``) the run is grouped by study and tagged ``trial-<n>``."""
    import wandb

    if wandb.run is not None:
        # An earlier trial of an in-process sweep: WandbLogger would reuse its run.
        wandb.finish()
    tags = [str(t) for t in tags]
    if trial is not None:
        study, number = str(trial["study_name"]), int(trial["number"])
        group = group or study
        name = name or f"{study}-trial-{number}"
        tags.append(f"trial-{number}")
    return WandbLogger(name=name, group=group, tags=tags, **kwargs)
