"""``dl-eval``: validate and test a checkpoint with the config it was trained with.

The checkpoint carries its training config (unresolved, as plain values). Overrides
from the command line replace the matching keys or whole groups of it, so
``dl-eval ckpt_path=... paths.data_dir=/data data.eval_batch_size=2000`` works.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from dltrain.checkpointing.checkpoint_io import load_checkpoint
from dltrain.commands import build
from dltrain.config.checks import validate
from dltrain.data.sources.tabular import checkpoint_state
from dltrain.errors import DataError
from dltrain.records.results import write_results

# Keys of the eval command itself, never copied onto the training config.
OWN_KEYS = ("ckpt_path", "task_name", "train", "test")


def run(cfg: DictConfig) -> dict[str, float]:
    ckpt_path = Path(str(cfg.ckpt_path))
    checkpoint = load_checkpoint(ckpt_path)
    stored = checkpoint.get("dltrain_config")
    if not stored:
        raise DataError(
            f"{ckpt_path} has no dl-train config inside",
            "evaluate checkpoints written by dl-train (they carry their config)",
        )
    run_cfg = merge_overrides(OmegaConf.create(stored), cfg)
    validate(run_cfg)
    started = time.monotonic()
    import lightning.pytorch as pl

    from dltrain.runtime.process import quiet_known_warnings

    quiet_known_warnings()
    pl.seed_everything(run_cfg.seed, workers=True, verbose=False)
    # A table's preprocessing as fitted in training (not refitted on today's file).
    fitted = checkpoint_state(checkpoint)
    if "dltrain_booster" in checkpoint:  # boosted trees: no Lightning loop
        from dltrain.trees import recipe

        datamodule = build.datamodule(run_cfg, fitted=fitted or {})
        extra = build.classification_metrics(run_cfg)
        metrics = recipe.evaluate(run_cfg, checkpoint, datamodule, extra)
        is_global_zero = True
    else:
        metrics, is_global_zero = _evaluate_net(run_cfg, cfg, ckpt_path, fitted)
    if is_global_zero:
        path = write_results(
            Path(cfg.paths.output_dir),
            "completed",
            metrics=metrics,
            checkpoint=str(ckpt_path),
            wall_s=round(time.monotonic() - started, 3),
        )
        shown = "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
        print(f"{shown}\nresults: {path}")
    return metrics


def _evaluate_net(
    run_cfg: DictConfig, cfg: DictConfig, ckpt_path: Path, fitted: dict | None
) -> tuple[dict[str, float], bool]:
    datamodule = build.datamodule(run_cfg, fitted=fitted)
    module = build.module(run_cfg, datamodule)
    bar = [c for c in build.callbacks(run_cfg, False, datamodule) if _is_progress(c)]
    trainer = build.trainer(run_cfg, bar, [], default_root_dir=cfg.paths.output_dir)
    metrics: dict[str, float] = {}
    if build.has_validation(run_cfg, datamodule):
        trainer.validate(module, datamodule=datamodule, ckpt_path=str(ckpt_path), verbose=False)
        metrics.update(_scalars(trainer.callback_metrics))
    trainer.test(module, datamodule=datamodule, ckpt_path=str(ckpt_path), verbose=False)
    metrics.update(_scalars(trainer.callback_metrics))
    return metrics, trainer.is_global_zero


def merge_overrides(stored: DictConfig, cfg: DictConfig) -> DictConfig:
    """Apply the eval command's overrides (keys or whole groups) to the stored config."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hydra_cfg = HydraConfig.get()
    groups = set(hydra_cfg.runtime.choices.keys())
    parsed = OverridesParser.create().parse_overrides(list(hydra_cfg.overrides.task))
    with open_dict(stored):
        for override in parsed:
            key = override.key_or_group
            if key in OWN_KEYS or key.startswith("hydra"):
                continue
            if key in groups:  # `data=mnist`: the whole group node
                stored[key] = cfg[key]
            else:
                OmegaConf.update(stored, key, OmegaConf.select(cfg, key), force_add=True)
        # The run directory is the eval's own; the data may live elsewhere now.
        stored.paths = cfg.paths
    return stored


def _is_progress(cb: Any) -> bool:
    from lightning.pytorch.callbacks import ProgressBar

    return isinstance(cb, ProgressBar)


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v.numel() == 1}
