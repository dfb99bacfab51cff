"""The metrics the built-in ``Classifier`` logs, known without importing torch.

A sweep checks ``optimized_metric`` against these before its first trial (a misspelled
name would otherwise train every trial to its end and fail each one). Beside the fixed
ones, the ``metrics`` setting adds ``<stage>/<name>`` (``module/metrics.py``), and
Lightning's ``LearningRateMonitor`` adds ``lr-<optimizer>[...]`` keys.
``tests/test_many_runs.py`` compares this with what a real run records, so it cannot
drift from ``classifier.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

METRICS = (
    "train/loss",
    "train/acc",
    "val/loss",
    "val/acc",
    "val/acc_best",
    "test/loss",
    "test/acc",
)
#: The Regressor's (``task=regression``, tabular data).
REGRESSION_METRICS = tuple(
    f"{stage}/{name}"
    for stage in ("train", "val", "test")
    for name in ("loss", "rmse", "mae", "r2")
) + ("val/rmse_best",)
LR_PREFIX = "lr-"
CLASSIFIER = "dltrain.module.classifier.Classifier"
REGRESSOR = "dltrain.module.regressor.Regressor"


def names(extra: Mapping[str, Sequence[str]] | None, task: str | None = None) -> list[str]:
    """Every name a run logs (but ``lr-*``), given its ``metrics`` setting and task."""
    if task == "regression":
        return list(REGRESSION_METRICS)
    out = list(METRICS)
    for stage, more in (extra or {}).items():
        out += [f"{stage}/{name}" for name in more or () if f"{stage}/{name}" not in out]
    return out


def is_logged(name: str, extra: Any = None, task: str | None = None) -> bool:
    """Whether a run of the built-in module with this ``metrics`` setting logs ``name``."""
    return name in names(extra, task) or name.startswith(LR_PREFIX)
