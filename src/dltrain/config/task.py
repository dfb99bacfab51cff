"""Classification or regression: the metric names and directions that follow the task.

Defaults in ``configs/train.yaml`` are the classifier's (``monitor: val/acc``,
``optimized_metric: val/acc_best``). A regression run left at those defaults watches
``val/rmse`` and returns ``val/rmse_best`` instead; ``monitor_mode`` and a sweep's
``direction: auto`` follow the metric's name (lower is better for losses and errors).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, open_dict

#: Metric names where lower is better (the part after ``<stage>/``).
LOWER_IS_BETTER = ("loss", "rmse", "mae", "mse", "error")
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
    if base in LOWER_IS_BETTER or base.endswith("_loss"):
        return "min"
    if base in ("acc", "auroc", "f1_macro", "r2") or base.startswith(("acc", "f1")):
        return "max"
    return None


def sweep_direction(direction: str, optimized_metric: str | None) -> str:
    """``auto`` -> ``minimize`` or ``maximize`` from the optimised metric's name."""
    if direction != "auto":
        return direction
    return "minimize" if metric_mode(optimized_metric) == "min" else "maximize"


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
