"""Pruning for sweep trials: report the optimised metric to the Optuna trial after every
validation and stop at once when the pruner says so.

Built on optuna-integration's ``PyTorchLightningPruningCallback`` (it works with
``lightning.pytorch`` 2.x: it raises ``optuna.TrialPruned`` from ``on_validation_end``,
which Lightning re-raises out of ``fit``). Added here: a trial whose loss is no longer
finite fails with that reason instead of training on; and a DDP trial (``-m`` with a
``ddp*`` profile, ``dltrain.runtime.job_processes``) is owned by rank 0 alone.

Under DDP only rank 0 holds the Optuna trial: it reports and asks the pruner, and
broadcasts the decision in the same hook on every rank, so all ranks stop at the same
point. The other ranks are plain runs of the trial's config (``+trial.*`` included)
started by rank 0: they never open the study. optuna-integration's own DDP path has
every rank open the trial and needs an RDB storage; it is not used.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import optuna
from omegaconf import DictConfig, OmegaConf
from optuna_integration import PyTorchLightningPruningCallback

from dltrain.config.task import metric_mode
from dltrain.errors import RunError

LOSSES = ("train/loss", "val/loss")


class TrialPruning(PyTorchLightningPruningCallback):
    """Report ``monitor`` each validation epoch; prune; fail on a NaN/inf loss.
    ``trial`` None: a DDP rank > 0, which follows rank 0's decision."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass  # the base class's DDP set-up (RDB storage on every rank) is not used

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        check_finite_loss(trainer)  # the losses are reduced: every rank raises alike
        reason: str | None = None
        if self._trial is not None:
            try:
                super().on_validation_end(trainer, pl_module)
            except optuna.TrialPruned as ex:
                reason = str(ex)
        if trainer.world_size > 1:
            reason = trainer.strategy.broadcast(reason, src=0)
        if reason is not None:
            raise optuna.TrialPruned(reason)


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
    a study with several objectives (Optuna cannot prune those). A DDP rank > 0 gets
    one without the trial: it follows rank 0 (see the module docstring)."""
    from dltrain.runtime.process import is_rank_zero
    from dltrain.sweep.study import load_trial

    monitor = str(cfg.optimized_metric)
    if not is_rank_zero():
        many = OmegaConf.is_list(cfg.optimized_metric)  # rank 0 decides alike
        return None if many else TrialPruning(None, monitor=monitor)
    trial = load_trial(cfg.trial)
    if len(trial.study.directions) > 1:
        return None
    return TrialPruning(trial, monitor=monitor)


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
