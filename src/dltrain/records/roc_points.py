"""The points of a run's ROC curves, computed where the test predictions are (torch),
so the figure's worker only draws lines.

Why here and not in the plotting worker: the curves come from torchmetrics' own
``binary_roc`` / ``binary_auroc`` (the functions behind the ``test/auroc`` a run logs,
so the legend's AUROC is that metric's per-class value), which the run's process has
imported already. Computing them in the worker meant importing scikit-learn there
(0.6 s on the 2-core development machine), on the critical path of every run's end.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class RocCurve(NamedTuple):
    """One class's curve (one vs rest; the positive class of a binary task)."""

    label: int
    fpr: np.ndarray
    tpr: np.ndarray
    auroc: float


Array = np.ndarray | torch.Tensor


def roc_points(probs: Array, target: Array) -> list[RocCurve]:
    """Each class's ROC curve from ``probs`` (rows x classes) and integer ``target``; a
    class whose rows are all positive or all negative has no curve."""
    from torchmetrics.functional.classification import binary_auroc, binary_roc

    probs = torch.as_tensor(np.asarray(probs), dtype=torch.float64)
    target = torch.as_tensor(np.asarray(target)).long()
    n = probs.shape[1]
    curves = []
    for k in [1] if n == 2 else range(n):
        positives = (target == k).long()
        if bool(positives.all()) or not bool(positives.any()):
            continue
        fpr, tpr, _ = binary_roc(probs[:, k], positives, validate_args=False)
        auroc = binary_auroc(probs[:, k], positives, validate_args=False)
        curves.append(RocCurve(k, fpr.numpy(), tpr.numpy(), float(auroc)))
    return curves
