"""Builders: plain functions that turn config nodes into objects (data, net, module,
trainer). Shared by ``train.py`` and ``evaluate.py`` so both build the same thing."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from dltrain.checkpointing.checkpoint_io import SafeCheckpointIO
from dltrain.data.memory import InMemoryDataModule
from dltrain.module.classifier import Classifier
from dltrain.runtime.hooks import skip_unused_callback_hooks, skip_unused_module_hooks


def datamodule(cfg: DictConfig) -> InMemoryDataModule:
    return instantiate(cfg.data)


def classifier(cfg: DictConfig) -> Classifier:
    """The net from ``cfg.model`` inside the Classifier, with optimizer and scheduler."""
    net = instantiate(cfg.model)
    if cfg.get("channels_last"):
        net = net.to(memory_format=torch.channels_last)  # its convs then output channels-last
    if cfg.get("compile"):
        net.compile()  # in place: state_dict keys stay the same as without compile
    sched = cfg.scheduler.get("scheduler")
    module = Classifier(
        net=net,
        num_classes=cfg.data.num_classes,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(sched) if sched is not None else None,
        scheduler_interval=cfg.scheduler.get("interval", "epoch"),
        monitor=cfg.monitor,
        # Unresolved, so `dl-eval paths.data_dir=...` re-resolves what depends on it.
        run_config=OmegaConf.to_container(cfg, resolve=False),
        metrics=classification_metrics(cfg),
    )
    skip_unused_module_hooks(module)  # ~0.02 ms a step (callbacks/hooks.py)
    return module


def classification_metrics(cfg: DictConfig) -> dict[str, list[str]]:
    """``cfg.metrics`` as plain lists by stage (absent in older stored configs: none)."""
    node = cfg.get("metrics")
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def has_validation(cfg: DictConfig) -> bool:
    return float(cfg.data.get("val_fraction", 0.0)) > 0 and cfg.trainer.get(
        "limit_val_batches"
    ) not in (0, 0.0)


def callbacks(cfg: DictConfig, with_logger: bool) -> list[Callback]:
    """Callbacks from ``cfg.callbacks``, adapted to runs without validation or logger."""
    node = cfg.get("callbacks") or {}
    out: list[Callback] = []
    for spec in node.values():
        if spec is None or "_target_" not in spec:
            continue
        if not has_validation(cfg) and str(spec.get("monitor", "")).startswith("val/"):
            continue  # no validation: no best checkpoint, no early stopping
        cb = instantiate(spec)
        if isinstance(cb, LearningRateMonitor) and not with_logger:
            continue  # it refuses to run without a logger
        out.append(cb)
    if cfg.get("trial") is not None and has_validation(cfg):
        # A trial of an Optuna sweep (the sweeper sets cfg.trial): report and prune.
        from dltrain.sweep.pruning import trial_pruning

        out.append(trial_pruning(cfg))
    return out


def loggers(cfg: DictConfig) -> list[Any]:
    node = cfg.get("logger") or {}
    return [instantiate(spec) for spec in node.values() if spec and "_target_" in spec]


def trainer(cfg: DictConfig, cbs: list[Callback], logs: list[Any], **overrides: Any) -> pl.Trainer:
    from lightning.pytorch.callbacks import ProgressBar

    has_bar = any(isinstance(c, ProgressBar) for c in cbs)
    has_ckpt = any(isinstance(c, ModelCheckpoint) for c in cbs)
    kwargs: dict[str, Any] = {
        "callbacks": cbs,
        "logger": logs or False,
        "enable_progress_bar": has_bar,
        "enable_checkpointing": has_ckpt,
        # Atomic saves and weights_only loads for every checkpoint (see checkpoints.py).
        "plugins": [SafeCheckpointIO()],
    }
    kwargs.update(overrides)
    out = instantiate(cfg.trainer, **kwargs)
    skip_unused_callback_hooks(out.callbacks)  # ~0.1 ms a step (callbacks/hooks.py)
    return out
