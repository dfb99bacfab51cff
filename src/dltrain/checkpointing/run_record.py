"""What a checkpoint carries besides the weights: the run's config and what inputs need.

``dl-eval`` rebuilds the data and the module from the stored config, and ``dl-predict``
normalises its inputs with the stored statistics, so neither needs the training run.
A callback rather than the LightningModule's own hook: every module gets it, a user's
LightningModule (``module=...``) as much as the built-in Classifier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dltrain.errors import DataError

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


def rebuild_net(checkpoint: dict[str, Any], ckpt_path: Path) -> tuple[nn.Module, DictConfig]:
    """The net from the stored config, with the checkpoint's weights, in eval mode; and
    that config."""
    stored = checkpoint.get(CONFIG_KEY)
    if not stored:
        raise DataError(
            f"{ckpt_path} has no dl-train config inside",
            "use checkpoints written by dl-train (they carry their config)",
        )
    run_cfg = OmegaConf.create(stored)
    net = instantiate(run_cfg.model)
    # The Classifier holds the net as `net`; its other entries are metric states.
    weights = {k[4:]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(weights)
    return net.eval(), run_cfg
