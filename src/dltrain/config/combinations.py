"""Settings that are each valid but cannot work together: the cross-key rules no
signature can express. They run after ``signatures.check``, so every value has its type."""

from __future__ import annotations

from collections.abc import Mapping
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
    check_plateau(cfg)


def check_plateau(cfg: DictConfig, datamodule: Any = None) -> None:
    """``scheduler=plateau`` watching a ``val/`` metric needs a validation split: asked
    of the data's class and config before it is built, of ``datamodule`` once it is."""
    monitor = str(cfg.get("monitor") or "")
    sched = _plain(cfg, "scheduler")
    inner = sched.get("scheduler") if isinstance(sched, dict) else None
    if not (
        isinstance(inner, dict)
        and inner.get("_target_") == "torch.optim.lr_scheduler.ReduceLROnPlateau"
        and monitor.startswith("val/")
    ):
        return
    data, trainer = _plain(cfg, "data"), _plain(cfg, "trainer")
    if not has_validation(datamodule if datamodule is not None else data, trainer):
        raise ConfigError(
            f"scheduler=plateau watches {monitor}, but this run has no validation split",
            f"{_how_to_validate(data, trainer)}, or use another scheduler",
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


def has_validation(data: Any, trainer: Any = None) -> bool:
    """Does this run have a validation split? The one answer for every caller: the best
    checkpoint and early stopping on a ``val/`` metric, sweep pruning, ``scheduler=
    plateau`` and ``dl-eval``.

    Args:
        data: the built data module: one with a ``val_fraction`` (the built-ins; a
            table's follows its split column once read) has a split when it is above 0,
            any other when its class implements ``val_dataloader``. Before it is
            built: its config, decided the same way from the class its ``_target_``
            names and the config's ``val_fraction`` (the class's default when absent).
        trainer: the trainer's config; ``limit_val_batches: 0`` turns validation off.
    """
    limit = trainer.get("limit_val_batches") if trainer is not None else None
    if limit is not None and not isinstance(limit, bool) and limit == 0:
        return False
    if not isinstance(data, Mapping) and not OmegaConf.is_config(data):  # built
        fraction = getattr(data, "val_fraction", None)
        if isinstance(fraction, (int, float)):
            return fraction > 0
        return _implements_val(type(data))
    cls = _data_class(data.get("_target_"))
    if cls is not None and not _implements_val(cls):
        return False
    fraction = data.get("val_fraction", _default(cls, "val_fraction"))
    if isinstance(fraction, (int, float)) or cls is None:
        return float(fraction or 0) > 0
    return True


def _default(cls: type | None, name: str) -> Any:
    """The default of ``cls``'s constructor argument ``name`` (``None``: none)."""
    import inspect

    try:
        param = inspect.signature(cls).parameters.get(name) if cls is not None else None
    except (TypeError, ValueError):
        return None
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def _implements_val(cls: type) -> bool:
    """``cls`` overrides LightningDataModule's ``val_dataloader`` (which raises)."""
    from lightning.pytorch import LightningDataModule

    own = getattr(cls, "val_dataloader", None)
    return own is not None and own is not LightningDataModule.val_dataloader


def _data_class(target: Any) -> type | None:
    from hydra.utils import get_class

    try:
        return get_class(str(target))
    except Exception:  # noqa: BLE001 - a bad _target_ is reported when it is imported
        return None


def _how_to_validate(data: Any, trainer: Any) -> str:
    limit = trainer.get("limit_val_batches") if isinstance(trainer, dict) else None
    if limit is not None and not isinstance(limit, bool) and limit == 0:
        return "drop trainer.limit_val_batches=0"
    target = data.get("_target_") if isinstance(data, dict) else None
    cls = _data_class(target)
    if cls is not None and not _implements_val(cls):
        return f"implement val_dataloader in {target}"
    return "set data.val_fraction > 0 (e.g. 0.1)"


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
