"""Schemas of the user-facing config groups, checked before anything is loaded.

One dataclass per class a config option instantiates (keyed by its ``_target_``): the
fields are the arguments users may set, with their types and allowed ranges. Checking
needs only the composed config, so a typo costs a second, not a torch import and a
dataset load. Hand-written rather than Hydra structured configs so that every YAML
stays a plain mirror of its class and the messages can say how to fix the value.

Hydra already rejects an override of a key that does not exist (``errors.py`` adds the
did-you-mean); here ``+key=...`` additions and edited YAML files get the same check.
A test keeps the argument lists in sync with the real signatures.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

from omegaconf import DictConfig, OmegaConf

from dltrain.errors import ConfigError, did_you_mean

# ---- field rules -----------------------------------------------------------------------


def rule(
    *,
    ge: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    choices: tuple[Any, ...] | None = None,
    each_ge: float | None = None,
    min_len: int = 0,
    example: str | None = None,
) -> Any:
    """A dataclass field carrying a value rule (``ge``: >=, ``gt``: >, ``each_ge``: every
    list item >=, ``min_len``: at least that many items)."""
    meta = {"ge": ge, "gt": gt, "lt": lt, "le": le, "choices": choices, "each_ge": each_ge}
    meta.update(min_len=min_len, example=example)
    return field(default=None, metadata=meta)


# ---- top level ---------------------------------------------------------------------------


@dataclass
class Run:
    seed: int | None = rule(example="seed=42")
    train: bool = rule()
    test: bool = rule()
    ckpt_path: str | None = rule()
    resume: str = rule(choices=("auto", "never"))
    nan_policy: str = rule(choices=("stop", "skip"))
    monitor: str = rule()
    monitor_mode: str = rule(choices=("min", "max"))
    optimized_metric: str | list[str] | None = rule()
    task: str | None = rule(choices=("classification", "regression"))
    regression_loss: str = rule(choices=("mse", "huber"))
    compile: bool = rule()
    matmul_precision: str = rule(choices=("highest", "high", "medium"))


# ---- data --------------------------------------------------------------------------------


@dataclass
class Data:
    shape: list[int] = rule(each_ge=1, min_len=1, example="data.shape=[1,28,28]")
    num_classes: int = rule(ge=2, example="data.num_classes=10")
    batch_size: int = rule(ge=1, example="data.batch_size=64")
    eval_batch_size: int = rule(ge=1, example="data.eval_batch_size=512")
    val_fraction: float = rule(ge=0.0, lt=1.0, example="data.val_fraction=0.1 (0: no validation)")
    seed: int | None = rule()
    mean: float | list[float] | None = rule()
    std: float | list[float] | None = rule(gt=0.0)
    augment: Any = rule()
    cache_shape: list[int] | None = rule(each_ge=1, min_len=1, example="data.cache_shape=null")
    device_budget: float = rule(ge=0.0, example="data.device_budget=0.25")


@dataclass
class FileData(Data):
    data_dir: str = rule()
    download: bool = rule()
    cache_dir: str | None = rule()


@dataclass
class SyntheticData(Data):
    num_train: int = rule(ge=1)
    num_test: int = rule(ge=1)


@dataclass
class TabularData:
    path: str = rule(example="data.path=data/table.csv")
    target: str = rule(example="data.target=price")
    task: str | None = rule(choices=("classification", "regression"))
    numeric: list[str] | None = rule()
    categorical: list[str] | None = rule()
    drop: list[str] | None = rule()
    scaling: str = rule(choices=("standard", "quantile", "none"))
    target_transform: str | None = rule(choices=("log",))
    test_fraction: float = rule(gt=0.0, lt=1.0, example="data.test_fraction=0.2")
    val_fraction: float = rule(ge=0.0, lt=1.0, example="data.val_fraction=0.1 (0: no validation)")
    split_column: str | None = rule()
    shape: list[int] | None = rule()
    num_classes: int | None = rule()
    batch_size: int = rule(ge=1, example="data.batch_size=256")
    eval_batch_size: int = rule(ge=1, example="data.eval_batch_size=4096")
    seed: int | None = rule()


#: Training samples (before the validation split) of datasets whose size is fixed.
FIXED_TRAIN_SIZE = {"dltrain.data.digits.DigitsDataModule": 1438}

# ---- models ------------------------------------------------------------------------------

ACTIVATIONS = ("relu", "gelu", "tanh", "silu", "leaky_relu")


@dataclass
class Model:
    # null for tables: the recipe fills both in once the table is read.
    in_shape: list[int] | None = rule(each_ge=1, min_len=1)
    num_classes: int | None = rule(ge=1)


@dataclass
class MLP(Model):
    hidden: list[int] = rule(each_ge=1, example="model.hidden=[256,128] ([] for none)")
    activation: str = rule(choices=ACTIVATIONS)
    dropout: float = rule(ge=0.0, lt=1.0, example="model.dropout=0.1")
    batch_norm: bool = rule()
    tabular: dict | None = rule()
    embed_dim: int | None = rule(ge=1)


@dataclass
class FTTransformer(Model):
    tabular: dict | None = rule()
    d_token: int = rule(ge=1, example="model.d_token=96")
    n_blocks: int = rule(ge=1, example="model.n_blocks=2")
    heads: int = rule(ge=1)
    ffn_factor: float = rule(gt=0.0)
    attention_dropout: float = rule(ge=0.0, lt=1.0)
    ffn_dropout: float = rule(ge=0.0, lt=1.0)


@dataclass
class Booster:
    n_estimators: int = rule(ge=1, example="model.n_estimators=1000")
    learning_rate: float = rule(gt=0.0, example="model.learning_rate=0.05")
    early_stopping_rounds: int = rule(ge=1, example="model.early_stopping_rounds=50")
    params: dict | None = rule()


@dataclass
class XGBoost(Booster):
    max_depth: int = rule(ge=0, example="model.max_depth=6")
    min_child_weight: float = rule(ge=0.0)
    subsample: float = rule(gt=0.0, le=1.0)
    colsample_bytree: float = rule(gt=0.0, le=1.0)
    reg_lambda: float = rule(ge=0.0)
    reg_alpha: float = rule(ge=0.0)
    gamma: float = rule(ge=0.0)
    max_cat_to_onehot: int = rule(ge=1)
    max_bin: int = rule(ge=2)


@dataclass
class LightGBM(Booster):
    num_leaves: int = rule(ge=2, example="model.num_leaves=31")
    max_depth: int = rule(ge=-1)
    min_child_samples: int = rule(ge=0)
    subsample: float = rule(gt=0.0, le=1.0)
    subsample_freq: int = rule(ge=0)
    colsample_bytree: float = rule(gt=0.0, le=1.0)
    reg_lambda: float = rule(ge=0.0)
    reg_alpha: float = rule(ge=0.0)
    max_bin: int = rule(ge=2)


@dataclass
class CNN(Model):
    channels: list[int] = rule(each_ge=1, min_len=1, example="model.channels=[32,64]")
    convs_per_stage: int = rule(ge=1)
    kernel_size: int = rule(ge=1)
    activation: str = rule(choices=ACTIVATIONS)
    dropout: float = rule(ge=0.0, lt=1.0, example="model.dropout=0.1")
    pool: str = rule(choices=("flatten", "avg"))
    hidden: int = rule(ge=0)


# ---- optimizers and schedulers -----------------------------------------------------------


@dataclass
class Optimizer:
    lr: float = rule(gt=0.0, example="optimizer.lr=0.001")
    weight_decay: float = rule(ge=0.0)
    maximize: bool = rule()
    foreach: bool | None = rule()
    differentiable: bool = rule()
    fused: bool | None = rule()


@dataclass
class Adam(Optimizer):
    betas: list[float] = rule()
    eps: float = rule(gt=0.0)
    amsgrad: bool = rule()
    capturable: bool = rule()
    decoupled_weight_decay: bool = rule()


@dataclass
class AdamW(Optimizer):
    betas: list[float] = rule()
    eps: float = rule(gt=0.0)
    amsgrad: bool = rule()
    capturable: bool = rule()


@dataclass
class SGD(Optimizer):
    momentum: float = rule(ge=0.0)
    dampening: float = rule(ge=0.0)
    nesterov: bool = rule()


@dataclass
class Cosine:
    T_max: int = rule(ge=1)
    eta_min: float = rule(ge=0.0)
    last_epoch: int = rule()


@dataclass
class Step:
    step_size: int = rule(ge=1)
    gamma: float = rule(gt=0.0)
    last_epoch: int = rule()


@dataclass
class OneCycle:
    max_lr: float = rule(gt=0.0)
    total_steps: int | None = rule(ge=1)
    epochs: int | None = rule(ge=1)
    steps_per_epoch: int | None = rule(ge=1)
    pct_start: float = rule(gt=0.0, lt=1.0)
    anneal_strategy: str = rule(choices=("cos", "linear"))
    cycle_momentum: bool = rule()
    base_momentum: float = rule(ge=0.0)
    max_momentum: float = rule(ge=0.0)
    div_factor: float = rule(gt=0.0)
    final_div_factor: float = rule(gt=0.0)
    three_phase: bool = rule()
    last_epoch: int = rule()


@dataclass
class Plateau:
    mode: str = rule(choices=("min", "max"))
    factor: float = rule(gt=0.0, lt=1.0)
    patience: int = rule(ge=0)
    threshold: float = rule(ge=0.0)
    threshold_mode: str = rule(choices=("rel", "abs"))
    cooldown: int = rule(ge=0)
    min_lr: float | list[float] = rule()
    eps: float = rule(ge=0.0)


@dataclass
class SchedulerGroup:
    scheduler: dict | None = rule()
    interval: str = rule(choices=("epoch", "step"))


# ---- trainer -----------------------------------------------------------------------------

PRECISIONS = (
    "auto", "64-true", "64", 64, "32-true", "32", 32, "16-mixed", "16", 16,
    "bf16-mixed", "bf16", "16-true", "bf16-true", "transformer-engine",
    "transformer-engine-float16",
)  # fmt: skip


@dataclass
class Trainer:
    accelerator: str = rule(choices=("cpu", "gpu", "cuda", "mps", "tpu", "auto"))
    strategy: str | dict = rule()
    devices: int | str | list[int] = rule()
    num_nodes: int = rule(ge=1)
    precision: str | int | None = rule(choices=PRECISIONS)
    logger: Any = rule()
    callbacks: Any = rule()
    fast_dev_run: bool | int = rule()
    max_epochs: int = rule(ge=1, example="trainer.max_epochs=10")
    min_epochs: int | None = rule(ge=0)
    max_steps: int = rule(ge=-1)
    min_steps: int | None = rule(ge=0)
    max_time: Any = rule()
    limit_train_batches: int | float | None = rule(ge=0)
    limit_val_batches: int | float | None = rule(ge=0)
    limit_test_batches: int | float | None = rule(ge=0)
    limit_predict_batches: int | float | None = rule(ge=0)
    overfit_batches: int | float = rule(ge=0)
    val_check_interval: int | float | str | None = rule()
    check_val_every_n_epoch: int | None = rule(ge=1)
    num_sanity_val_steps: int | None = rule(ge=-1)
    log_every_n_steps: int | None = rule(ge=1)
    enable_checkpointing: bool | None = rule()
    enable_progress_bar: bool | None = rule()
    enable_model_summary: bool | None = rule()
    accumulate_grad_batches: int = rule(ge=1)
    gradient_clip_val: int | float | None = rule(ge=0)
    gradient_clip_algorithm: str | None = rule(choices=("norm", "value"))
    deterministic: bool | str | None = rule()
    benchmark: bool | None = rule()
    inference_mode: bool = rule()
    use_distributed_sampler: bool = rule()
    profiler: Any = rule()
    detect_anomaly: bool = rule()
    barebones: bool = rule()
    plugins: Any = rule()
    sync_batchnorm: bool = rule()
    reload_dataloaders_every_n_epochs: int = rule(ge=0)
    default_root_dir: str | None = rule()
    enable_autolog_hparams: bool = rule()
    model_registry: str | None = rule()


#: Schema of each known ``_target_``; other targets (your own classes) are not checked.
BY_TARGET: dict[str, type] = {
    "dltrain.data.digits.DigitsDataModule": Data,
    "dltrain.data.mnist.MNISTDataModule": FileData,
    "dltrain.data.mnist.FashionMNISTDataModule": FileData,
    "dltrain.data.cifar.CIFAR10DataModule": FileData,
    "dltrain.data.synthetic.SyntheticDataModule": SyntheticData,
    "dltrain.data.tabular.TabularDataModule": TabularData,
    "dltrain.nets.mlp.MLP": MLP,
    "dltrain.nets.ft_transformer.FTTransformer": FTTransformer,
    "dltrain.trees.boosters.XGBoost": XGBoost,
    "dltrain.trees.boosters.LightGBM": LightGBM,
    "dltrain.nets.cnn.CNN": CNN,
    "torch.optim.Adam": Adam,
    "torch.optim.AdamW": AdamW,
    "torch.optim.SGD": SGD,
    "torch.optim.lr_scheduler.CosineAnnealingLR": Cosine,
    "torch.optim.lr_scheduler.StepLR": Step,
    "torch.optim.lr_scheduler.OneCycleLR": OneCycle,
    "torch.optim.lr_scheduler.ReduceLROnPlateau": Plateau,
    "lightning.pytorch.Trainer": Trainer,
    "lightning.Trainer": Trainer,
}

# Keys of Hydra's instantiate, allowed on every node.
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


# ---- checking ----------------------------------------------------------------------------


def check(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` for the first wrong type, range, key or combination."""
    top = {f.name: _plain(cfg, f.name) for f in dataclasses.fields(Run) if f.name in cfg}
    check_node(top, Run, "")
    for group in ("data", "model", "optimizer", "trainer"):
        node = _plain(cfg, group)
        if isinstance(node, dict) and node.get("_target_") in BY_TARGET:
            check_node(node, BY_TARGET[node["_target_"]], f"{group}.")
    sched = _plain(cfg, "scheduler")
    if isinstance(sched, dict):
        check_node(sched, SchedulerGroup, "scheduler.")
        inner = sched.get("scheduler")
        if isinstance(inner, dict) and inner.get("_target_") in BY_TARGET:
            check_node(inner, BY_TARGET[inner["_target_"]], "scheduler.scheduler.")
    check_combinations(cfg)


def check_node(node: dict[str, Any], schema: type, prefix: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    for key, value in node.items():
        if key in HYDRA_KEYS:
            continue
        if key not in fields:
            target = node.get("_target_", prefix.rstrip("."))
            raise ConfigError(
                f"unknown key '{prefix}{key}' for {target}{did_you_mean(key, fields)}",
                f"remove it; known keys: {', '.join(fields)}",
            )
        _check_value(f"{prefix}{key}", value, hints[key], fields[key].metadata)


def _check_value(path: str, value: Any, tp: Any, meta: Any) -> None:
    example = meta.get("example")
    if not _is_type(value, tp):
        fix = f"e.g. {example}" if example else f"set {path} to {_type_name(tp)}"
        raise ConfigError(f"{path}={_show(value)} is not {_type_name(tp)}", fix)
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        names = list(dict.fromkeys(str(c) for c in choices))
        hint = did_you_mean(str(value), names)
        raise ConfigError(
            f"{path}={_show(value)} is not one of the allowed values{hint}",
            f"use one of: {', '.join(names)}",
        )
    numbers = [v for v in (value if isinstance(value, list) else [value]) if _is_number(v)]
    if isinstance(value, list) and len(value) < meta.get("min_len", 0):
        what = f"{path}={_show(value)} needs at least {meta['min_len']} item(s)"
        raise ConfigError(what, _fix(path, example))
    each = meta.get("each_ge")
    if each is not None and isinstance(value, list):
        for v in value:
            if v < each:
                raise ConfigError(
                    f"{path}={_show(value)} has {v}, below {each:g}", _fix(path, example)
                )
    for v in numbers:
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{path}={_show(value)} is not a finite number", _fix(path, example))
        if not _in_range(v, meta):
            raise ConfigError(
                f"{path}={_show(value)} is out of range: it must be {_range(meta)}",
                _fix(path, example),
            )


def _in_range(v: float, meta: Any) -> bool:
    ge, gt, le, lt = (meta.get(k) for k in ("ge", "gt", "le", "lt"))
    return (
        (ge is None or v >= ge)
        and (gt is None or v > gt)
        and (le is None or v <= le)
        and (lt is None or v < lt)
    )


def _range(meta: Any) -> str:
    parts = []
    for key, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if meta.get(key) is not None:
            parts.append(f"{word} {meta[key]:g}")
    return " and ".join(parts)


def _fix(path: str, example: str | None) -> str:
    return f"e.g. {example}" if example else f"change {path}"


# ---- combinations ------------------------------------------------------------------------


def check_combinations(cfg: DictConfig) -> None:
    """Settings that are each valid but cannot work together."""
    data, model, trainer = (_plain(cfg, k) for k in ("data", "model", "trainer"))
    if isinstance(data, dict) and isinstance(model, dict):
        _check_model_fits_data(data, model)
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
            f"model.in_shape={_show(in_shape)} does not match data.shape={_show(shape)} "
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
    target = data.get("_target_")
    total = data.get("num_train") if "num_train" in data else FIXED_TRAIN_SIZE.get(str(target))
    if not isinstance(total, int):
        return  # known once loaded; memory.py checks it then
    train = total - int(round(total * float(data.get("val_fraction") or 0.0)))
    if world > train:
        raise ConfigError(
            f"{world} processes (trainer.devices x trainer.num_nodes) but only {train} "
            "training samples: some processes would get no data",
            f"use at most {train} processes (e.g. trainer.devices=1), or more data",
        )


def _has_validation(data: Any, trainer: Any) -> bool:
    frac = data.get("val_fraction", 0) if isinstance(data, dict) else 0
    limit = trainer.get("limit_val_batches") if isinstance(trainer, dict) else None
    return bool(frac) and limit not in (0, 0.0)


# ---- helpers -----------------------------------------------------------------------------


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


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_type(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return any(_is_type(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return _is_number(value)
    if tp is str:
        return isinstance(value, str)
    if tp is dict:
        return isinstance(value, dict)
    if origin is list:
        (inner,) = typing.get_args(tp)
        return isinstance(value, list) and all(_is_type(v, inner) for v in value)
    return isinstance(value, tp)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(t) for t in typing.get_args(tp))
    if origin is list:
        plural = {int: "integers", float: "numbers", str: "strings"}
        return f"a list of {plural.get(typing.get_args(tp)[0], 'values')}"
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string",
             dict: "a config node", type(None): "null"}  # fmt: skip
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_show(v) for v in value) + "]"
    if value is None:
        return "null"
    return str(value)
