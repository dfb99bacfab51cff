"""What a checkpoint carries besides the weights: the run's config and what inputs need.

``dl-eval`` rebuilds the data and the module from the stored config, and ``dl-predict``
normalises its inputs with the stored statistics, so neither needs the training run.
A callback rather than the LightningModule's own hook: every module gets it, a user's
LightningModule (``module=...``) as much as the built-in Classifier.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

CONFIG_KEY = "dltrain_config"
DATA_KEY = "dltrain_data"


class RecordRunInCheckpoint(Callback):
    """Store ``run_config`` (plain values, unresolved) and the data's prediction state
    (text) or per-channel input statistics in every checkpoint; plain values keep
    ``weights_only=True`` loading."""

    def __init__(self, run_config: dict[str, Any]) -> None:
        self.run_config = run_config

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CONFIG_KEY] = self.run_config
        # What prediction needs from the data, so it needs no training data: a data
        # module's own record (text: class names, max_length, the tokenizer's state), or
        # the statistics of the [0, 1]-scaled training inputs (the in-memory modules).
        datamodule = getattr(trainer, "datamodule", None)
        if callable(getattr(datamodule, "prediction_state", None)):
            checkpoint[DATA_KEY] = datamodule.prediction_state()
        elif datamodule is not None and getattr(datamodule, "mean", None) is not None:
            checkpoint[DATA_KEY] = {
                "mean": datamodule.mean.cpu().tolist(),
                "std": datamodule.std.cpu().tolist(),
                "classes": [str(c) for c in getattr(datamodule, "classes", None) or []],
            }
