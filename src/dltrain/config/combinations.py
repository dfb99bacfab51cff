"""Settings that are each valid but cannot work together: the cross-key rules no
signature can express. They run after ``signatures.check``, so every value has its type."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from dltrain.config.signatures import show
from dltrain.errors import ConfigError


def check_model_fits_data(cfg: DictConfig) -> None:
    """The model's shape and class count follow the data's (by interpolation); an
    override that breaks that is refused. Needs only the config: runs early."""
    data, model = _plain(cfg, "data"), _plain(cfg, "model")
    if isinstance(data, dict) and isinstance(model, dict):
        _check_model_fits_data(data, model)


def check(cfg: DictConfig) -> None:
    """The rules that need the data and trainer nodes checked first."""
    data, trainer = _plain(cfg, "data"), _plain(cfg, "trainer")
    if isinstance(data, dict) and isinstance(trainer, dict):
        _check_processes_fit_data(data, trainer)
    monitor = str(cfg.get("monitor") or "")
    sched = _plain(cfg, "scheduler")
    inner = sched.get("scheduler") if isinstance(sched, dict) else None
    if (
        isinstance(inner, dict)
        and inner.get("_target_") == "torch.optim.lr_scheduler.ReduceLROnPlateau"
        and monitor.startswith("val/")
        and not _has_validation(data, trainer)
    ):
        raise ConfigError(
            f"scheduler=plateau watches {monitor}, but this run has no validation split",
            "set data.val_fraction > 0 (e.g. 0.1), or use another scheduler",
        )


def _check_model_fits_data(data: dict[str, Any], model: dict[str, Any]) -> None:
    shape, in_shape = data.get("shape"), model.get("in_shape")
    if in_shape is not None and shape is not None and list(in_shape) != list(shape):
        raise ConfigError(
            f"model.in_shape={show(in_shape)} does not match data.shape={show(shape)} "
            "and the model cannot adapt to it",
            "drop the model.in_shape override (it follows data.shape), "
            "or pick data whose shape the model was built for",
        )
    classes = model.get("num_classes")
    if classes is not None and classes != data.get("num_classes"):
        raise ConfigError(
            f"model.num_classes={classes} does not match "
            f"data.num_classes={data.get('num_classes')}",
            "drop the model.num_classes override (it follows data.num_classes)",
        )


def _check_processes_fit_data(data: dict[str, Any], trainer: dict[str, Any]) -> None:
    devices, nodes = trainer.get("devices"), trainer.get("num_nodes", 1)
    if not isinstance(devices, int) or isinstance(devices, bool) or devices < 1:
        return
    world = devices * (nodes if isinstance(nodes, int) else 1)
    total = data.get("num_train") if "num_train" in data else _train_size(data.get("_target_"))
    if not isinstance(total, int):
        return  # known once loaded; memory.py checks it then
    train = total - int(round(total * float(data.get("val_fraction") or 0.0)))
    if world > train:
        raise ConfigError(
            f"{world} processes (trainer.devices x trainer.num_nodes) but only {train} "
            "training samples: some processes would get no data",
            f"use at most {train} processes (e.g. trainer.devices=1), or more data",
        )


def _train_size(target: Any) -> int | None:
    """A data class's ``train_size``: the training samples of a fixed-size dataset."""
    from hydra.utils import get_class

    try:
        return getattr(get_class(str(target)), "train_size", None)
    except Exception:  # noqa: BLE001 - a bad _target_ is reported when it is instantiated
        return None


def _has_validation(data: Any, trainer: Any) -> bool:
    frac = data.get("val_fraction", 0) if isinstance(data, dict) else 0
    limit = trainer.get("limit_val_batches") if isinstance(trainer, dict) else None
    return bool(frac) and limit not in (0, 0.0)


def _plain(cfg: DictConfig, key: str) -> Any:
    """A config group as plain, resolved Python values. Values that cannot be resolved
    here (``${hydra:...}`` outside a Hydra run) are left out, not checked."""
    node = cfg.get(key)
    if not OmegaConf.is_config(node):
        return node
    try:
        return OmegaConf.to_container(node, resolve=True)
    except Exception:  # noqa: BLE001 - fall back to the keys that do resolve
        return _resolvable(node)


def _resolvable(node: Any) -> Any:
    if not OmegaConf.is_dict(node):
        try:
            return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        except Exception:  # noqa: BLE001
            return None
    out: dict[str, Any] = {}
    for k in node.keys():
        try:
            out[str(k)] = _resolvable(node[k])
        except Exception:  # noqa: BLE001
            continue
    return out
