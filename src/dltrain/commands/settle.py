"""The config settled once the data has loaded: the run's task and what the data turned
out to be are written into it, and the monitored and optimised metrics follow the task.

Here, in the layer that runs things, rather than in ``config/``: the config layer
composes and checks a config; rewriting it from loaded data is a step of the run.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from dltrain.config.task import CLASSIFIER, REGRESSOR_NODE, logged_name, metric_mode


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
                if isinstance(value, str):
                    cfg[key] = logged_name(value, task)
                elif OmegaConf.is_list(value):  # several objectives
                    cfg[key] = [logged_name(str(v), task) for v in value]
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
