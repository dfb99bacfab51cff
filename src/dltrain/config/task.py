"""Classification or regression: the metric names and directions that follow the task.

Defaults in ``configs/train.yaml`` are the classifier's (``monitor: val/acc``,
``optimized_metric: val/acc_best``). A regression run left at those defaults watches
``val/rmse`` and returns ``val/rmse_best`` instead; ``monitor_mode``, a sweep's
default direction and tree pruning follow the metric's name (``metric_mode``: the one
place that knows which metrics are minimised).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, open_dict

from dltrain.errors import ConfigError

#: Metric names where lower is better (the part after ``<stage>/``); any name ending in
#: ``loss`` too (``smooth_loss``, the boosting libraries' ``logloss``, ``mlogloss``).
LOWER_IS_BETTER = ("loss", "rmse", "mae", "mse", "error")
#: Metric names where higher is better (``auc``: the boosting libraries' AUROC).
HIGHER_IS_BETTER = ("acc", "auroc", "auc", "f1_macro", "r2")
TABLE_DATA = "TabularDataModule"
CLASSIFIER = "dltrain.module.classifier.Classifier"
#: configs/module/regressor.yaml: what a regression run left at module=classifier gets.
REGRESSOR_NODE = {"_target_": "dltrain.module.regressor.Regressor", "monitor": "${monitor}"}
#: The classification defaults and their regression counterparts.
REGRESSION_DEFAULTS = {"val/acc": "val/rmse", "val/acc_best": "val/rmse_best"}


def metric_mode(name: str | None) -> str | None:
    """``"min"`` for a loss or error, ``"max"`` for a score, ``None`` for another name."""
    if not name:
        return None
    base = str(name).split("/")[-1].removesuffix("_best")
    if base in LOWER_IS_BETTER or base.endswith("loss"):
        return "min"
    if base in HIGHER_IS_BETTER or base.startswith(("acc", "f1")):
        return "max"
    return None


def task_before_data(cfg: DictConfig) -> str | None:
    """The task as the config tells it before any data is read: ``None`` for a table
    left at ``task: null`` (inferred from its target once read)."""
    task = cfg.get("task")
    if task:
        return str(task)
    data = cfg.get("data")
    if data is not None and str(data.get("_target_", "")).endswith(TABLE_DATA):
        return None
    return "classification"


def direction_given(direction: Any) -> bool:
    """Whether ``hydra.sweeper.direction`` was set; null and ``auto`` mean "infer it"."""
    return direction is not None and direction != "auto"


def sweep_directions(direction: Any, metrics: list[str], task: str | None) -> Any:
    """``hydra.sweeper.direction`` as given (a name or a list); not given (null or
    ``auto``): one per optimised metric, from its name as the run will return it
    (a regression run turns the classification defaults into ``val/rmse*``).

    Raises ``ConfigError`` when the name does not tell (a metric of the user's own
    module, or a classification default on a table whose task is still unknown)."""
    if direction_given(direction):
        return direction
    out = []
    for name in metrics:
        if task == "regression":
            name = REGRESSION_DEFAULTS.get(name, name)
        elif task is None and name in REGRESSION_DEFAULTS:
            raise ConfigError(
                f"hydra.sweeper.direction is not set and optimized_metric '{name}' "
                "becomes val/rmse_best if the table's target turns out numeric",
                "set task=classification|regression or hydra.sweeper.direction",
            )
        mode = metric_mode(name)
        if mode is None:
            raise ConfigError(
                f"hydra.sweeper.direction is not set and optimized_metric '{name}' does "
                "not say whether lower or higher is better",
                "set hydra.sweeper.direction=minimize|maximize",
            )
        out.append("minimize" if mode == "min" else "maximize")
    return out


def settle(cfg: DictConfig, task: str | None = None, data: dict[str, Any] | None = None) -> None:
    """Write the run's task (and what the data turned out to be) into ``cfg``, and make
    the monitored and optimised metrics follow it. In place, before anything reads them.

    Args:
        task: ``classification`` or ``regression`` (``None``: ``cfg.task`` or
            classification).
        data: keys the loaded data fills in (``shape``, ``num_classes``) and the
            ``tabular`` feature description for nets that take it.
    """
    task = task or cfg.get("task") or "classification"
    with open_dict(cfg):
        cfg.task = task
        if data:
            cfg.data.shape = list(data["shape"])
            cfg.data.num_classes = int(data["num_classes"])
            if data.get("tabular") is not None and _takes_tabular(cfg):
                cfg.model.tabular = data["tabular"]
        if task == "regression":
            module = cfg.get("module")
            if module is None or module.get("_target_") == CLASSIFIER:  # the default
                cfg.module = REGRESSOR_NODE
            for key in ("monitor", "optimized_metric"):
                value = cfg.get(key)
                if value in REGRESSION_DEFAULTS:
                    cfg[key] = REGRESSION_DEFAULTS[value]
        mode = metric_mode(cfg.get("monitor"))
        if mode:
            cfg.monitor_mode = mode


def _takes_tabular(cfg: DictConfig) -> bool:
    import inspect

    from hydra.utils import get_class

    target = cfg.model.get("_target_") if cfg.get("model") is not None else None
    if not target:
        return False
    try:
        return "tabular" in inspect.signature(get_class(str(target))).parameters
    except Exception:  # noqa: BLE001 - a bad _target_ is reported when it is built
        return False
