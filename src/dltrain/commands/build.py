"""Builders: plain functions that turn config nodes into objects (data, net, module,
trainer). Shared by ``train.py`` and ``evaluate.py`` so both build the same thing."""

from __future__ import annotations

import inspect
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from dltrain.checkpointing import fsdp
from dltrain.checkpointing.checkpoint_io import SafeCheckpointIO
from dltrain.commands.settle import settle
from dltrain.config import combinations
from dltrain.config import task as run_task
from dltrain.config.targets import DATA_DESCRIPTIVE, DATA_RUNNER, MODULE_GIVEN
from dltrain.data.sources import stand_in
from dltrain.errors import ConfigError
from dltrain.runtime.hooks import skip_unused_callback_hooks, skip_unused_module_hooks


def datamodule(
    cfg: DictConfig, fitted: dict[str, Any] | None = None, batch_size: int | None = None
) -> pl.LightningDataModule:
    """The data module of ``cfg.data``: a built-in in-memory one, or any
    LightningDataModule whose batches are ``(x, y)``. ``batch_size``: the per-device
    batch ``data.global_batch_size`` divides into (config/global_batch.py) in place of
    ``data.batch_size``.

    A table is read, split and its preprocessing fitted (or the ``fitted`` state of a
    checkpoint applied) now, and what it turned out to be (task, width, classes,
    embedding sizes) is written into ``cfg`` before the model is built."""

    node = cfg.data
    takes = _accepted(get_class(node._target_), dict.fromkeys(DATA_DESCRIPTIVE))
    drop = [k for k in DATA_DESCRIPTIVE if k in node and k not in takes]
    drop += [k for k in DATA_RUNNER if k in node]  # the global batch: config/global_batch.py
    given = {} if batch_size is None else {"batch_size": batch_size}
    given.update(_shared_budget(cfg, get_class(node._target_)))
    if not drop:
        dm = instantiate(node, **given)
    else:
        plain = OmegaConf.to_container(node, resolve=True)  # resolved while it has its parent
        dm = instantiate({k: v for k, v in plain.items() if k not in drop}, **given)
    dm = stand_in.wrap(dm)  # dl-smoke only: synthetic data where the data is absent
    if cfg.get("channels_last") and hasattr(dm, "memory_format"):
        # Image batches leave normalisation channels-last, in the same copy: the
        # channels-last net then never converts its input layout (4-D batches only).
        dm.memory_format = torch.channels_last
    prepare = getattr(dm, "prepare_table", None)
    if prepare is None:
        if cfg.get("task") == "regression":
            raise ConfigError(
                "task=regression needs tabular data (a numeric target column)",
                "use data=tabular (data.path=..., data.target=...), or task=classification",
            )
        settle(cfg)
        return dm
    state = prepare(fitted)
    shown = {"shape": list(dm.shape), "num_classes": dm.num_classes}
    settle(cfg, state.task, {**shown, "tabular": state.feature_spec()})
    return dm


def _shared_budget(cfg: DictConfig, data_class: type) -> dict[str, float]:
    """``device_budget``: a parallel job's share of its GPU (runtime/trial_devices.py)
    where the data module takes one; else nothing."""
    from dltrain.runtime import trial_devices

    placed = trial_devices.choose(cfg)
    budget = _device_budget(cfg.data, data_class)
    if placed is None or placed.sharers == 1 or budget is None:
        return {}
    return {"device_budget": placed.budget(budget)}


def _device_budget(node: DictConfig, data_class: type) -> float | None:
    """``data.device_budget``, else the data class's default; ``None``: it takes none."""
    if "device_budget" in node:
        return float(node.device_budget)
    param = inspect.signature(data_class).parameters.get("device_budget")
    if param is None or param.default is inspect.Parameter.empty:
        return None
    return float(param.default)


#: The module of configs stored before the ``module`` group existed (old checkpoints).
DEFAULT_MODULE = {
    "_target_": "dltrain.module.classifier.Classifier",
    "num_classes": "${data.num_classes}",
    "monitor": "${monitor}",
}


def module(cfg: DictConfig, dm: Any = None) -> pl.LightningModule:
    """The LightningModule of ``cfg.module`` (the Classifier by default) around the net
    of ``cfg.model``. Besides its config keys it gets, when its constructor takes them,
    the built net (``net``), the optimizer and scheduler factories (``optimizer``,
    ``scheduler``, ``scheduler_interval``), ``metrics`` (the Classifier's extra
    metrics) and, from tabular data, the target's standardisation (``target_mean``,
    ``target_std``: the Regressor's): a user's module needs none of them."""
    # channels_last and compile, in the order the strategy needs (FSDP: its own)
    layout, compile = bool(cfg.get("channels_last")), bool(cfg.get("compile"))
    net = fsdp.prepare_net(instantiate(cfg.model), cfg.trainer, layout, compile)
    sched = cfg.scheduler.get("scheduler")
    given = {  # the names in MODULE_GIVEN (config/targets.py: the checks skip them)
        "net": net,
        "optimizer": instantiate(cfg.optimizer),
        "scheduler": instantiate(sched) if sched is not None else None,
        "scheduler_interval": cfg.scheduler.get("interval", "epoch"),
        "metrics": classification_metrics(cfg),
    }
    state = getattr(dm, "state", None)
    if state is not None and getattr(state, "task", None) == "regression":
        given.update(target_mean=state.target_mean, target_std=state.target_std)
        given["loss"] = str(cfg.get("regression_loss") or "mse")
    node = cfg.get("module")
    if node is None:
        node = OmegaConf.create(DEFAULT_MODULE, parent=cfg)
    factory = instantiate(node, _partial_=True)
    out = factory(**_accepted(factory.func, {k: given[k] for k in MODULE_GIVEN if k in given}))
    if not isinstance(out, pl.LightningModule):
        raise ConfigError(
            f"module {node._target_} is a {type(out).__name__}, not a LightningModule",
            "name a lightning.pytorch.LightningModule subclass in configs/module/",
        )
    skip_unused_module_hooks(out)  # ~0.02 ms a step (callbacks/hooks.py)
    return out


def stored_arguments(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """What the module's and the data module's constructors get, as plain config values
    (per checkpoint key, see ``checkpoint_io.HPARAM_KEYS``). A module that calls
    ``save_hyperparameters()`` captures the built net and the optimizer and scheduler
    factories; its checkpoints store these values in their place, so they stay
    ``weights_only`` loadable and say how each object is built."""
    node = cfg.get("module")
    if node is None:
        node = OmegaConf.create(DEFAULT_MODULE, parent=cfg)
    given = {
        "net": cfg.model,
        "optimizer": cfg.optimizer,
        "scheduler": cfg.scheduler.get("scheduler"),
        "scheduler_interval": cfg.scheduler.get("interval", "epoch"),
        "metrics": cfg.get("metrics"),
    }
    module_args = {**_arguments(node), **{k: _plain(v) for k, v in given.items()}}
    data_args = {k: v for k, v in _arguments(cfg.data).items() if k not in DATA_RUNNER}
    return {"hyper_parameters": module_args, "datamodule_hyper_parameters": data_args}


def _arguments(node: Any) -> dict[str, Any]:
    """A config node's constructor arguments (no ``_target_``-like keys), plain."""
    plain = _plain(node)
    if not isinstance(plain, dict):
        return {}
    return {k: v for k, v in plain.items() if not (k.startswith("_") and k.endswith("_"))}


def _plain(node: Any) -> Any:
    if not OmegaConf.is_config(node):
        return node
    try:
        return OmegaConf.to_container(node, resolve=True)
    except Exception:  # noqa: BLE001 - a value only a running Hydra job resolves
        return OmegaConf.to_container(node, resolve=False)


def _accepted(target: Any, given: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``given`` that ``target``'s signature takes (all, with **kwargs)."""
    params = inspect.signature(target).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return given
    names = {p.name for p in params}
    return {k: v for k, v in given.items() if k in names}


def record_callback(cfg: DictConfig) -> Callback:
    """Stores the run's config (unresolved, so ``dl-eval paths.data_dir=...`` re-resolves
    what depends on it) and the input statistics in every checkpoint."""
    from dltrain.checkpointing.run_record import RecordRunInCheckpoint

    return RecordRunInCheckpoint(OmegaConf.to_container(cfg, resolve=False))


def classification_metrics(cfg: DictConfig) -> dict[str, list[str]]:
    """``cfg.metrics`` as plain lists by stage (absent in older stored configs: none)."""
    node = cfg.get("metrics")
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def has_validation(cfg: DictConfig, dm: Any = None) -> bool:
    """Does this run have a validation split: asked of the built data module ``dm``
    (of its class and config before it is built); ``config/combinations.py``."""
    data = dm if dm is not None else _plain(cfg.data)
    return combinations.has_validation(data, cfg.trainer)


def callbacks(cfg: DictConfig, with_logger: bool, dm: Any = None) -> list[Callback]:
    """Callbacks from ``cfg.callbacks``, adapted to runs without validation or logger
    (``dm``: the built data module, which knows whether it has a validation split)."""
    node = cfg.get("callbacks") or {}
    validates = has_validation(cfg, dm)
    out: list[Callback] = []
    for spec in node.values():
        if spec is None or "_target_" not in spec:
            continue
        if not validates and str(spec.get("monitor", "")).startswith("val/"):
            continue  # no validation: no best checkpoint, no early stopping
        cb = instantiate(spec)
        if isinstance(cb, LearningRateMonitor) and not with_logger:
            continue  # it refuses to run without a logger
        out.append(cb)
    if cfg.get("trial") is not None and validates:
        # A trial of an Optuna sweep (the sweeper sets cfg.trial): report and prune.
        from dltrain.sweep.pruning import trial_pruning

        pruning = trial_pruning(cfg)
        if pruning is not None:
            out.append(pruning)
    return out


class PlateauModeCheck(Callback):
    """A ``ReduceLROnPlateau``'s mode follows the metric the module actually steps it on.

    Why: ``scheduler=plateau`` takes its mode from ``monitor`` (``${monitor_mode}``), and a
    module that steps it on another metric (Lightning's docs: ``"monitor": "val/loss"``
    while the run monitors ``val/acc``) would cut the rate whenever that metric improves.
    A mode left to follow ``monitor`` is set from the stepped metric with one note line; a
    mode the user wrote that contradicts it stops before the first step. Checked once the
    module's ``configure_optimizers`` has run (before a resume restores the scheduler,
    whose saved state already holds the mode chosen here)."""

    def __init__(self, follow: bool = True) -> None:
        self.follow = follow

    @classmethod
    def of(cls, cfg: DictConfig) -> PlateauModeCheck:
        """Follow the stepped metric unless the config states ``scheduler.scheduler.mode``."""
        node = cfg.get("scheduler") or {}
        raw = OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else {}
        mode = (raw.get("scheduler") or {}).get("mode") if isinstance(raw, dict) else None
        return cls(follow=mode in (None, "${monitor_mode}"))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from torch.optim.lr_scheduler import ReduceLROnPlateau

        for config in trainer.lr_scheduler_configs:
            plateau = config.scheduler
            want = run_task.metric_mode(config.monitor)
            mode = getattr(plateau, "mode", None)
            if not isinstance(plateau, ReduceLROnPlateau) or not want or mode == want:
                continue
            if self.follow:
                # torch's own initialiser of the mode (also resets the best value seen).
                plateau._init_is_better(want, plateau.threshold, plateau.threshold_mode)
                plateau._reset()
                if trainer.is_global_zero:
                    print(f"note: the ReduceLROnPlateau scheduler is stepped on "
                          f"{config.monitor}: mode={want}", flush=True)  # fmt: skip
                continue
            better = "lower" if want == "min" else "higher"
            raise ConfigError(
                f"the ReduceLROnPlateau scheduler watches {config.monitor} with "
                f"mode={mode}, but {better} {config.monitor} is better",
                f"set scheduler.scheduler.mode={want}",
            )


def loggers(cfg: DictConfig) -> list[Any]:
    node = cfg.get("logger") or {}
    return [instantiate(spec) for spec in node.values() if spec and "_target_" in spec]


def trainer(
    cfg: DictConfig,
    cbs: list[Callback],
    logs: list[Any],
    **overrides: Any,
) -> pl.Trainer:
    """The Trainer of ``cfg.trainer`` with the hardware defaults resolved
    (``hardware_settings``)."""
    from lightning.pytorch.callbacks import ProgressBar

    has_bar = any(isinstance(c, ProgressBar) for c in cbs)
    has_ckpt = any(isinstance(c, ModelCheckpoint) for c in cbs)
    kwargs: dict[str, Any] = {
        "callbacks": cbs,
        "logger": logs or False,
        "enable_progress_bar": has_bar,
        "enable_checkpointing": has_ckpt,
        # Atomic saves of plain values and weights_only loads for every checkpoint.
        "plugins": [SafeCheckpointIO(stored_arguments(cfg))],
    }
    kwargs.update(hardware_settings(cfg))
    kwargs.update(overrides)
    out = instantiate(cfg.trainer, **kwargs)
    skip_unused_callback_hooks(out.callbacks)  # ~0.1 ms a step (callbacks/hooks.py)
    return out


def hardware_settings(cfg: DictConfig) -> dict[str, Any]:
    """Trainer arguments the hardware decides: ``precision: auto`` resolved
    (runtime/precision.py), cuDNN autotuning on GPUs unless the run is deterministic
    (``benchmark: null``) and a parallel job's GPU (runtime/trial_devices.py). FSDP's
    policies are its strategy's own (checkpointing/fsdp.py)."""
    from dltrain.runtime import precision, trial_devices

    node = cfg.trainer
    accelerator = str(node.get("accelerator", "cpu"))
    out: dict[str, Any] = {"precision": precision.resolve(node.get("precision"), accelerator)}
    placed = trial_devices.choose(cfg)  # a parallel job's GPU: k mod the GPU count
    if placed is not None:
        out["devices"] = [placed.index]
        data_class = get_class(cfg.data._target_) if "_target_" in cfg.data else None
        budget = _device_budget(cfg.data, data_class) if data_class else None
        print(placed.describe(budget), flush=True)  # one process: rank 0
    if node.get("benchmark") is None and accelerator in precision.GPU_ACCELERATORS:
        out["benchmark"] = not node.get("deterministic")
    return out
