"""The recipe of ``dl-train``, top to bottom: validate, build, fit, test, record.

``run(cfg)`` returns the value of ``cfg.optimized_metric`` so Hydra sweepers can
optimise it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from dltrain.checkpointing import resume
from dltrain.checkpointing.signals import StopOnSignal, interruption
from dltrain.commands import build
from dltrain.config.checks import is_multirun, validate_run
from dltrain.config.combinations import check_plateau
from dltrain.config.global_batch import Split, settle
from dltrain.errors import ConfigError, find_user_error
from dltrain.records import plot_worker, terminal
from dltrain.records.results import write_results
from dltrain.runtime.process import (
    gpus_hidden_on_cpu,
    is_rank_zero,
    process_settings,
    quiet_known_warnings,
)
from dltrain.tracking.hparams import flat_config
from dltrain.trees.boosters import is_booster


def run(cfg: DictConfig) -> float | None:
    """Train (and test) one configuration; write ``results.json`` even if it fails."""
    validate_run(cfg)  # before any data is loaded or directory filled
    run_dir = Path(cfg.paths.output_dir)
    if is_rank_zero():
        terminal.show_config(cfg, run_dir, echo=not is_multirun())
    started = time.monotonic()
    from dltrain.runtime import job_processes

    try:
        # In -m, a DDP job starts (and ends) its own ranks: job_processes.
        with gpus_hidden_on_cpu(cfg), job_processes.job(is_multirun()):
            record = fit_and_test(cfg)
        plot_worker.wait_all()  # the PNGs drawn beside the test stage (records/plot_worker.py)
    except BaseException as ex:
        plot_worker.wait_all(raise_errors=False)  # the epochs it completed, still drawn
        if _was_pruned(ex) and not is_rank_zero():
            return None  # a trial's rank > 0: rank 0 reports the pruning, this rank exits 0
        stopped = interruption(ex, run_dir)  # SIGTERM/SIGINT: checkpoint saved, resumable
        if is_rank_zero():
            status, reason = _failure(ex)
            if stopped:
                status, reason = "interrupted", str(stopped)
            write_results(run_dir, status, reason=reason, wall_s=time.monotonic() - started)
        if stopped:
            raise stopped from ex
        raise
    record["wall_s"] = round(time.monotonic() - started, 3)
    if record.pop("is_global_zero"):
        path = write_results(run_dir, "completed", **record)
        terminal.show_summary(record, run_dir, terminal.tracker_places(cfg))
        print(f"results: {path}")
    return _optimized(cfg, record["metrics"])


def _global_batch(cfg: DictConfig) -> Split | None:
    """``data.global_batch_size`` divided into a per-device batch and accumulation steps
    (``None``: not set), said in one line; or the warning of a recipe whose tuned global
    batch the hardware profile changes (config/global_batch.py)."""
    import sys

    batch, line = settle(cfg)
    if line and is_rank_zero():
        print(line, file=sys.stderr if line.startswith("warning:") else sys.stdout, flush=True)
    return batch


def fit_and_test(cfg: DictConfig) -> dict[str, Any]:
    import lightning.pytorch as pl
    import torch

    from dltrain.checkpointing.nan_guard import NanGuard
    from dltrain.runtime import job_processes

    quiet_known_warnings()

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    process_settings(cfg)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision(cfg.matmul_precision)
    tuned = _tune(cfg)  # tune=...: the finders' suggestions, written into cfg
    if tuned is not None and not cfg.train:
        return {"metrics": {}, "tuned": tuned, "epochs": 0, "steps": 0, "is_global_zero": True}

    batch = _global_batch(cfg)  # data.global_batch_size: per-device batch x accumulation
    # a table is read and fitted here (cfg learns the task)
    datamodule = build.datamodule(cfg, batch_size=batch.per_device if batch else None)
    if is_booster(cfg.model.get("_target_")):  # boosted trees: their library's own loop
        from dltrain.trees import recipe

        return recipe.fit_and_test(
            cfg, datamodule, build.loggers(cfg), build.classification_metrics(cfg)
        )
    check_plateau(cfg, datamodule)  # the built data module knows its validation split
    module = build.module(cfg, datamodule)
    loggers = build.loggers(cfg)
    callbacks = build.callbacks(cfg, with_logger=bool(loggers), dm=datamodule)
    callbacks += [
        build.record_callback(cfg),
        resume.RunState(),
        StopOnSignal(Path(cfg.paths.output_dir) / resume.LAST),
        NanGuard(cfg.get("nan_policy", "stop")),
        build.PlateauModeCheck.of(cfg),
    ]
    steps = {"accumulate_grad_batches": batch.accumulation} if batch else {}
    trainer = build.trainer(cfg, callbacks, loggers, **steps)
    job_processes.adopt(trainer)  # in -m: the job's ranks run this job, not the -m line
    for logger in loggers:
        logger.log_hyperparams(flat_config(cfg))

    metrics: dict[str, float] = {}
    fit_s = 0.0
    if cfg.train:
        t0 = time.monotonic()
        ckpt_path = resume.checkpoint_to_resume(cfg)
        if ckpt_path and trainer.is_global_zero:
            print(f"resuming from {ckpt_path}", flush=True)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        fit_s = time.monotonic() - t0
        metrics.update(_scalars(trainer.callback_metrics))
    if cfg.test:
        ckpt = _best_checkpoint(trainer) if cfg.train else cfg.get("ckpt_path")
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt or None, verbose=False)
        metrics.update(_scalars(trainer.callback_metrics))

    # The Classifier counts samples and training seconds; a user's module may not.
    samples = getattr(module, "samples_seen", 0) * trainer.world_size
    return {
        "metrics": metrics,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "fit_s": round(fit_s, 3),
        "train_s": round(getattr(module, "train_seconds", fit_s), 3),
        "train_samples": samples or None,
        "train_samples_per_s": round(samples / fit_s, 1) if fit_s > 0 and samples else None,
        "best_checkpoint": _best_checkpoint(trainer),
        "seed": cfg.seed,
        "precision": str(trainer.precision),  # trainer.precision=auto resolved
        "world_size": trainer.world_size,
        "is_global_zero": trainer.is_global_zero,
    }


def _tune(cfg: DictConfig) -> dict[str, Any] | None:
    """``tune=...``: run Lightning's finders (commands/tune.py), print their suggestions
    as override lines and reseed, so training with them is ``dl-train <overrides>``."""
    import lightning.pytorch as pl

    from dltrain.commands import tune

    if not tune.requested(cfg):
        return None
    found = tune.tune(cfg)
    shown = "\n".join(f"{key}={value}" for key, value in found.items())
    then = "training with them" if cfg.train else "add train=true to train with them"
    print(f"tuned ({then}):\n{shown}", flush=True)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    return found


def _best_checkpoint(trainer: Any) -> str | None:
    cb = trainer.checkpoint_callback
    if cb is None:
        return None
    return cb.best_model_path or cb.last_model_path or None


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if getattr(v, "numel", lambda: 1)() == 1}


def _optimized(cfg: DictConfig, metrics: dict[str, float]) -> float | list[float] | None:
    """The value of ``optimized_metric`` for a sweeper: one number, or one per name
    when it is a list (a study with several objectives)."""
    from omegaconf import ListConfig

    setting = cfg.get("optimized_metric")
    if not setting:
        return None
    names = [str(n) for n in setting] if isinstance(setting, ListConfig) else [str(setting)]
    missing = [n for n in names if n not in metrics]
    if missing:
        if is_multirun():  # a sweeper needs the value
            raise ConfigError(
                f"optimized_metric '{missing[0]}' was not logged by this run",
                f"use one of: {', '.join(sorted(metrics))}",
            )
        return None
    values = [metrics[n] for n in names]
    return values if isinstance(setting, ListConfig) else values[0]


def _failure(ex: BaseException) -> tuple[str, str]:
    """(status, reason) of a run that raised: "pruned" by a sweep's pruner, else "failed"."""
    if _was_pruned(ex):
        return "pruned", str(ex)
    user = find_user_error(ex)
    return "failed", str(user) if user else f"{type(ex).__name__}: {ex}"


def _was_pruned(ex: BaseException) -> bool:
    import sys

    # Only a sweep trial imports optuna; no other run can have been pruned.
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(ex, optuna.TrialPruned)
