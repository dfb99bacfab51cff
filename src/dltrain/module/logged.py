"""The metrics the built-in ``Classifier`` logs, known without importing torch.

A sweep checks ``optimized_metric`` against these before its first trial (a misspelled
name would otherwise train every trial to its end and fail each one). Lightning's
``LearningRateMonitor`` adds ``lr-<optimizer>[...]`` keys. ``tests/test_many_runs.py``
compares this list with what a real run records, so it cannot drift from
``classifier.py``.
"""

from __future__ import annotations

METRICS = (
    "train/loss",
    "train/acc",
    "val/loss",
    "val/acc",
    "val/acc_best",
    "test/loss",
    "test/acc",
)
LR_PREFIX = "lr-"
CLASSIFIER = "dltrain.module.classifier.Classifier"


def is_logged(name: str) -> bool:
    """Whether a run of the built-in module can log ``name``."""
    return name in METRICS or name.startswith(LR_PREFIX)
