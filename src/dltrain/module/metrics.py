"""Classification metrics beside accuracy, by name, from torchmetrics.

``Classifier(metrics={"test": ["auroc", "f1_macro"], "val": [...]})`` logs each as
``<stage>/<name>``. The names are the config's vocabulary (``metrics.test=[auroc]``);
each maps to one torchmetrics class, so the values are torchmetrics' own (exact under
DDP: their states are synced). Add a name here to offer another metric.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from dltrain.errors import ConfigError, did_you_mean

if TYPE_CHECKING:  # torchmetrics is imported where metrics are built: config checks
    from torch import Tensor  # read the names below without importing torch
    from torchmetrics import Metric

#: Label of the padding samples of DDP evaluation shards (``data/loading/batches.py``), which
#: every metric ignores: ``F.cross_entropy``'s default ``ignore_index``.
IGNORE_INDEX = -100
#: Stages that can log extra metrics.
STAGES = ("val", "test")


def _auroc(num_classes: int) -> Metric:
    from torchmetrics.classification import BinaryAUROC, MulticlassAUROC

    # Two classes: the usual binary AUROC of the positive class (index 1); more: the
    # one-vs-rest AUROC averaged over classes. Both are threshold-free (exact).
    if num_classes == 2:
        return BinaryAUROC(ignore_index=IGNORE_INDEX)
    return MulticlassAUROC(num_classes, average="macro", ignore_index=IGNORE_INDEX)


def _f1_macro(num_classes: int) -> Metric:
    from torchmetrics.classification import MulticlassF1Score

    return MulticlassF1Score(num_classes, average="macro", ignore_index=IGNORE_INDEX)


#: name -> factory(num_classes). Each metric is updated with class probabilities
#: (``softmax`` of the logits) and integer targets.
CLASSIFICATION_METRICS: dict[str, Callable[[int], Metric]] = {
    "auroc": _auroc,
    "f1_macro": _f1_macro,
}


def check_metric_names(metrics: Mapping[str, Sequence[str]] | None) -> None:
    """Raise ``ConfigError`` for an unknown stage or metric name."""
    for stage, names in (metrics or {}).items():
        if stage not in STAGES:
            raise ConfigError(
                f"metrics.{stage} is not a stage that logs metrics",
                f"use metrics.{' or metrics.'.join(STAGES)}",
            )
        for name in names or ():
            if name not in CLASSIFICATION_METRICS:
                raise ConfigError(
                    f"metrics.{stage} names an unknown metric '{name}'"
                    f"{did_you_mean(str(name), CLASSIFICATION_METRICS)}",
                    f"use any of: {', '.join(CLASSIFICATION_METRICS)}",
                )


def build_metrics(names: Sequence[str], num_classes: int) -> dict[str, Metric]:
    """Fresh metric objects by name (ordered as given)."""
    return {name: CLASSIFICATION_METRICS[name](num_classes) for name in names}


def update(metric: Metric, probs: Tensor, target: Tensor) -> None:
    """Feed one batch: binary metrics take the positive class's probability."""
    from torchmetrics.classification import BinaryAUROC

    if isinstance(metric, BinaryAUROC):
        metric.update(probs[:, 1], target)
    else:
        metric.update(probs, target)


# ---- whole-split scores (the boosted-tree path) ---------------------------------------------


def regression_scores(pred: Tensor, target: Tensor, target_std: float) -> dict[str, float]:
    """``loss`` (MSE of the standardised target, as the nets' loss), ``rmse``, ``mae`` and
    ``r2`` of predictions on the fitted scale: torchmetrics' functions, as the Regressor
    module logs them."""
    from torchmetrics.functional.regression import (
        mean_absolute_error,
        mean_squared_error,
        r2_score,
    )

    pred, target = pred.double(), target.double()
    rmse = float(mean_squared_error(pred, target, squared=False))
    return {
        "loss": (rmse / target_std) ** 2,
        "rmse": rmse,
        "mae": float(mean_absolute_error(pred, target)),
        "r2": float(r2_score(pred, target)),
    }


def classification_scores(
    probs: Tensor, target: Tensor, extra: Sequence[str] = ()
) -> dict[str, float]:
    """``loss`` (cross-entropy), ``acc`` and the named extra metrics of class
    probabilities, computed as the Classifier logs them."""
    from torchmetrics.functional.classification import multiclass_accuracy

    probs = probs.double()
    classes = probs.shape[1]
    picked = probs.gather(1, target.view(-1, 1)).clamp_min(1e-15)
    out = {
        "loss": float(-picked.log().mean()),
        "acc": float(multiclass_accuracy(probs, target, classes, average="micro")),
    }
    for name, metric in build_metrics(list(extra), classes).items():
        update(metric, probs.float(), target)
        out[name] = float(metric.compute())
    return out
