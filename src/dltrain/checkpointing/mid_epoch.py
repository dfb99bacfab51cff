"""``last.ckpt`` inside long epochs (every N steps or minutes), so a kill loses little."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint


class MidEpochCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` that never saves on an epoch's last batch.

    Lightning 2.6 does not resume correctly from a checkpoint written at the end of an
    epoch's last training batch (before validation and the epoch-end hooks): it counts
    that epoch as finished and skips the next one. The epoch-end checkpoint follows a
    moment later anyway, so that one save is simply left out.
    """

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return
        super().on_train_batch_end(trainer, *args, **kwargs)
