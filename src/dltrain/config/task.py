"""Classification or regression: the metric names and directions that follow the task.

Defaults in ``configs/train.yaml`` are the classifier's (``monitor: val/acc``,
``optimized_metric: val/acc_best``). A regression run left at those defaults watches
``val/rmse`` and returns ``val/rmse_best`` instead (``logged_name``). One rule says which
way is better for a metric (``metric_mode``), asked of the name the run actually logs:
``monitor_mode``, a sweep's direction (``sweep_directions``, which also refuses a given
direction that contradicts the metric) and tree pruning all follow it.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

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
    if data is not None and str(data.get("_target_")).endswith(TABLE_DATA):
        return None
    return "classification"


def direction_given(direction: Any) -> bool:
    """Whether ``hydra.sweeper.direction`` was set; null and ``auto`` mean "infer it"."""
    return direction is not None and direction != "auto"


def logged_name(name: str, task: str | None) -> str:
    """The metric a run of ``task`` logs for ``name``: a regression run turns the
    classification defaults into ``val/rmse*``; other names are kept."""
    return REGRESSION_DEFAULTS.get(name, name) if task == "regression" else name


def sweep_directions(direction: Any, metrics: list[str], task: str | None) -> Any:
    """The study's direction(s) for the metrics as the run will log them.

    Given (a name or a list, one per metric): returned as given, once checked against
    each metric whose name tells which way is better. Not given (null or ``auto``): one
    per metric, from its name.

    Raises ``ConfigError`` for a given direction that contradicts its metric, and, when
    none is given, for a name that does not tell (a metric of the user's own module, or
    a classification default on a table whose task is still unknown)."""
    if direction_given(direction):
        many = isinstance(direction, (list, tuple)) or OmegaConf.is_list(direction)
        given = [str(d) for d in direction] if many else [str(direction)] * len(metrics)
        for wanted, name in zip(given, metrics, strict=False):
            _check_direction(wanted, name, task)
        return direction
    out = []
    for name in metrics:
        if task is None and name in REGRESSION_DEFAULTS:
            raise ConfigError(
                f"hydra.sweeper.direction is not set and optimized_metric '{name}' "
                "becomes val/rmse_best if the table's target turns out numeric",
                "set task=classification|regression or hydra.sweeper.direction",
            )
        name = logged_name(name, task)
        mode = metric_mode(name)
        if mode is None:
            raise ConfigError(
                f"hydra.sweeper.direction is not set and optimized_metric '{name}' does "
                "not say whether lower or higher is better",
                "set hydra.sweeper.direction=minimize|maximize",
            )
        out.append(DIRECTION[mode])
    return out


#: ``metric_mode`` -> the study direction that optimises such a metric.
DIRECTION = {"min": "minimize", "max": "maximize"}


def _check_direction(wanted: str, name: str, task: str | None) -> None:
    """A given direction against the metric the run logs for ``name``; a table whose
    task is not known yet is checked again once it is read."""
    if task is None and name in REGRESSION_DEFAULTS:
        return
    logged = logged_name(name, task)
    mode = metric_mode(logged)
    if mode is None or DIRECTION[mode] == wanted or wanted not in DIRECTION.values():
        return  # a name that does not tell, or a direction the study refuses by itself
    better = "lower" if mode == "min" else "higher"
    why = f"; the target is numeric, so {name} is {logged}" if logged != name else ""
    raise ConfigError(
        f"hydra.sweeper.direction={wanted} contradicts optimized_metric '{logged}', "
        f"where {better} is better{why}",
        f"set hydra.sweeper.direction={DIRECTION[mode]}, or leave it out (it follows the "
        "metric)" + (", or task=classification" if why else ""),
    )
