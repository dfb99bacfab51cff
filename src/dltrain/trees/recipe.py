"""The recipe's boosted-tree path (``model=xgboost`` / ``model=lightgbm``).

The same data module, split and preprocessing as the nets, the same metric names in
``results.json`` and the loggers, the same plots and history, a checkpoint that
``dl-eval`` and ``dl-predict`` read; only the loop is the boosting library's own.
``commands/train.py`` comes here when the model is a tree; it hands over the built data
module, the loggers and the metric names, so the recipe sits beside the boosters
without reaching up into the commands.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from dltrain.checkpointing.checkpoint_io import SafeCheckpointIO
from dltrain.data.sources.tabular import CHECKPOINT_KEY, TabularDataModule
from dltrain.errors import ConfigError
from dltrain.module import metrics as scoring
from dltrain.records import plotting
from dltrain.records.history import write_history
from dltrain.records.roc_points import roc_points
from dltrain.tracking.hparams import flat_config
from dltrain.trees.boosters import Booster, device_is_gpu, kind_of

#: Library metric -> the runner's metric suffix in the per-round history.
HISTORY_NAMES = {
    "rmse": "rmse",
    "auc": "auroc",
    "logloss": "loss",
    "binary_logloss": "loss",
    "mlogloss": "loss",
    "multi_logloss": "loss",
}
CHECKPOINT = "model.ckpt"


def fit_and_test(
    cfg: DictConfig, dm: Any, loggers: list[Any], extra: dict[str, list[str]]
) -> dict[str, Any]:
    """Fit the trees on the training rows (early stopping on validation), score every
    split, write plots, history, checkpoint and logger records; the record of the run.
    ``extra``: the classification metrics by stage (``cfg.metrics``) besides accuracy."""
    if not isinstance(dm, TabularDataModule):
        raise ConfigError(
            f"model={_choice(cfg)} (boosted trees) needs tabular data",
            "use data=tabular (or data=diamonds / data=credit)",
        )
    run_dir = Path(str(cfg.paths.output_dir))
    state = dm.state
    booster: Booster = instantiate(cfg.model)
    kind = kind_of(state.task, dm.num_classes)
    splits = _arrays(dm)
    for logger in loggers:
        logger.log_hyperparams(_flat(cfg))
    t0 = time.monotonic()
    history = booster.fit(
        splits["train"],
        splits.get("val"),
        state.feature_types(),
        kind,
        dm.num_classes,
        threads=cfg.get("threads"),
        gpu=device_is_gpu(cfg.trainer.get("accelerator")),
        seed=int(cfg.seed),
        callbacks=_pruning(cfg, booster, kind, has_val="val" in splits),
    )
    fit_s = time.monotonic() - t0
    rows = history_rows(history, state.target_std if state.task == "regression" else 1.0)
    metrics = score(booster, dm, splits, extra)
    ckpt = save(run_dir / "checkpoints" / CHECKPOINT, cfg, dm, booster)
    write_history(run_dir, rows)
    plot(run_dir, rows, booster, dm, splits["test"])
    for logger in loggers:
        for row in rows:
            logger.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
        logger.log_metrics(metrics, step=len(rows))
        logger.save()
        logger.finalize("success")
    n_train = len(splits["train"][1])
    return {
        "metrics": metrics,
        "epochs": booster.best_round,  # boosting rounds kept (the best validation round)
        "steps": len(rows),  # rounds run
        "fit_s": round(fit_s, 3),
        "train_s": round(fit_s, 3),
        "train_samples_per_s": round(n_train * len(rows) / fit_s, 1) if fit_s > 0 else None,
        "best_checkpoint": str(ckpt),
        "seed": cfg.seed,
        "world_size": 1,
        "is_global_zero": True,
        "library": booster.library,
    }


def _arrays(dm: TabularDataModule) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    named = {"train": dm.train_set, "val": dm.val_set, "test": dm.test_set}
    return {k: (s.x.cpu().numpy(), s.y.cpu().numpy()) for k, s in named.items() if s is not None}


def _pruning(cfg: DictConfig, booster: Booster, kind: str, has_val: bool) -> list[Any]:
    """A sweep trial's pruning callback (optuna-integration's, for this library)."""
    if cfg.get("trial") is None or not has_val:
        return []
    from dltrain.sweep.pruning import tree_pruning

    callback = tree_pruning(cfg, booster, kind)
    return [callback] if callback is not None else []


def score(
    booster: Booster, dm: TabularDataModule, splits: dict[str, Any], extra: dict[str, list[str]]
) -> dict[str, float]:
    """``<split>/<metric>`` of every split, named as the nets' modules log them."""
    state = dm.state
    out: dict[str, float] = {}
    for split, (x, y) in splits.items():
        pred = torch.from_numpy(booster.predict(x))
        if state.task == "regression":
            std, mean = state.target_std, state.target_mean
            values = scoring.regression_scores(
                pred * std + mean, torch.from_numpy(y).double() * std + mean, std
            )
        else:
            names = list(extra.get(split) or ()) if split in ("val", "test") else []
            values = scoring.classification_scores(pred, torch.from_numpy(y).long(), names)
        out.update({f"{split}/{k}": v for k, v in values.items()})
    best = "val/rmse" if state.task == "regression" else "val/acc"
    if best in out:  # the kept model is the best validation round's
        out[f"{best}_best"] = out[best]
    return out


def history_rows(history: dict[str, dict[str, list[float]]], target_std: float) -> list[dict]:
    """Per boosting round ``{"epoch": i, "train/rmse": .., "val/rmse": ..}`` (RMSE on the
    fitted scale, as the nets' curves)."""
    rows: list[dict[str, float]] = []
    for split, series in history.items():
        stage = "val" if split in ("val", "validation") else "train"
        for metric, values in series.items():
            name = HISTORY_NAMES.get(metric)
            if name is None:
                continue
            factor = target_std if name == "rmse" else 1.0
            for i, v in enumerate(values):
                while len(rows) <= i:
                    rows.append({"epoch": len(rows)})
                rows[i][f"{stage}/{name}"] = float(v) * factor
    return rows


def plot(
    run_dir: Path,
    rows: list[dict],
    booster: Booster,
    dm: TabularDataModule,
    test: tuple[np.ndarray, np.ndarray],
) -> None:
    plots = run_dir / "plots"
    if rows:
        title = f"Learning curves: {run_dir.name} ({booster.library})"
        plotting.learning_curves(rows, plots / "learning_curves.png", title, "boosting round")
    state = dm.state
    pred = booster.predict(test[0])
    if state.task == "regression":
        std, mean = state.target_std, state.target_mean
        path = plots / "predicted_vs_true.png"
        plotting.regression(pred * std + mean, test[1] * std + mean, path, dm.target_label)
        return
    y = test[1].astype(np.int64)
    matrix = np.zeros((dm.num_classes, dm.num_classes), dtype=np.int64)
    np.add.at(matrix, (y, pred.argmax(1)), 1)
    plotting.confusion_matrix(matrix, plots / "confusion_matrix.png", dm.classes)
    curves = roc_points(pred, y)
    plotting.roc_curves(curves, pred.shape[1], len(y), plots / "roc.png", dm.classes)


# ---- checkpoints ------------------------------------------------------------------------------


def save(path: Path, cfg: DictConfig, dm: TabularDataModule, booster: Booster) -> Path:
    """A checkpoint like the nets' (config, fitted preprocessing) with the trees as bytes
    (a uint8 tensor: ``weights_only`` loading reads it)."""
    raw = booster.to_bytes()
    checkpoint = {
        "dltrain_config": OmegaConf.to_container(cfg, resolve=False),
        CHECKPOINT_KEY: dm.state_dict(),
        "dltrain_booster": {
            "library": booster.library,
            "kind": booster.kind,
            "num_classes": booster.num_classes,
            "best_round": booster.best_round,
            "model": torch.frombuffer(bytearray(raw), dtype=torch.uint8),
        },
    }
    SafeCheckpointIO().save_checkpoint(checkpoint, path)
    return path


def load(run_cfg: DictConfig, checkpoint: dict[str, Any]) -> Booster:
    """The trees of a checkpoint, ready to predict."""
    entry = checkpoint["dltrain_booster"]
    booster: Booster = instantiate(run_cfg.model)
    raw = entry["model"].numpy().tobytes()
    booster.load_bytes(raw, str(entry["kind"]), int(entry["num_classes"]))
    return booster


def evaluate(
    run_cfg: DictConfig, checkpoint: dict[str, Any], dm: Any, extra: dict[str, list[str]]
) -> dict[str, float]:
    """``dl-eval`` of a tree checkpoint: ``dm`` built with the checkpoint's fitted
    preprocessing, its trees, every split but training scored."""
    booster = load(run_cfg, checkpoint)
    splits = {k: v for k, v in _arrays(dm).items() if k != "train"}
    return score(booster, dm, splits, extra)


def _flat(cfg: DictConfig) -> dict[str, Any]:

    return flat_config(cfg)


def _choice(cfg: DictConfig) -> str:
    return str(cfg.model.get("_target_", "")).rsplit(".", 1)[-1].lower()
