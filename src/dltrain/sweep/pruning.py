"""Pruning for sweep trials: report the optimised metric to the Optuna trial after every
validation and stop at once when the pruner says so.

Built on optuna-integration's ``PyTorchLightningPruningCallback`` (it works with
``lightning.pytorch`` 2.x: it raises ``optuna.TrialPruned`` from ``on_validation_end``,
which Lightning re-raises out of ``fit``). Added here: a trial whose loss is no longer
finite fails with that reason instead of training on.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
from omegaconf import DictConfig
from optuna_integration import PyTorchLightningPruningCallback

from dltrain.config.task import metric_mode
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


def tree_pruning(cfg: DictConfig, booster: Any, kind: str) -> Any | None:
    """optuna-integration's XGBoost/LightGBM pruning callback for a boosted-tree trial:
    it reports the validation metric every boosting round (the first of the library's
    ``eval_metrics``: RMSE for regression, AUROC for two classes).

    The pruner compares those values in the study's direction, so a metric that runs the
    other way (multiclass log loss in a maximising study) is not reported: the trial
    then runs to its end unpruned, and a line says so."""
    from dltrain.sweep.study import load_trial

    trial = load_trial(cfg.trial)
    if len(trial.study.directions) > 1:  # multi-objective studies do not prune
        return None
    metric = booster.eval_metrics(kind)[0]
    direction = trial.study.direction.name.lower()
    if (metric_mode(metric) == "min") != (direction == "minimize"):
        print(
            f"trial {trial.number}: the boosting metric {metric} does not run in the study's "
            f"direction ({direction}); this trial is not pruned",
            flush=True,
        )
        return None
    return booster.pruning_callback(trial, metric)
