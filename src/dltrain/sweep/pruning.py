"""Pruning for sweep trials: report the optimised metric to the Optuna trial after every
validation and stop at once when the pruner says so.

Built on optuna-integration's ``PyTorchLightningPruningCallback`` (it works with
``lightning.pytorch`` 2.x: it raises ``optuna.TrialPruned`` from ``on_validation_end``,
which Lightning re-raises out of ``fit``). Added here: a trial whose loss is no longer
finite fails with that reason instead of training on.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
from omegaconf import DictConfig
from optuna_integration import PyTorchLightningPruningCallback

from dltrain.errors import RunError

LOSSES = ("train/loss", "val/loss")


class TrialPruning(PyTorchLightningPruningCallback):
    """Report ``monitor`` each validation epoch; prune; fail on a NaN/inf loss."""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            check_finite_loss(trainer)
        super().on_validation_end(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Under DDP the base class only stops training and notes the pruning in the
        # (RDB) storage; every rank raises here. A no-op for single-process trials.
        self.check_pruned()


def check_finite_loss(trainer: pl.Trainer) -> None:
    for name in LOSSES:
        value = trainer.callback_metrics.get(name)
        if value is not None and not math.isfinite(float(value)):
            raise RunError(
                f"{name} became {float(value)} at epoch {trainer.current_epoch}",
                "lower optimizer.lr or narrow its search range",
            )


def trial_pruning(cfg: DictConfig) -> TrialPruning | None:
    """The callback of the trial named by ``cfg.trial`` (set by the sweeper); None for
    a study with several objectives (Optuna cannot prune those)."""
    from dltrain.sweep.study import load_trial

    trial = load_trial(cfg.trial)
    if len(trial.study.directions) > 1:
        return None
    return TrialPruning(trial, monitor=str(cfg.optimized_metric))
