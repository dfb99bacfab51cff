"""PNG figures of runs: learning curves, learning rate, confusion matrix, ROC curves,
predicted-vs-true and residuals (regression), run comparison.

Figures are drawn with matplotlib's object API on the Agg canvas (``Figure`` +
``savefig``), never through ``pyplot``: no display is needed, no global backend is
switched, and nothing is left open between calls.

Inside :func:`building_only` a function builds its figure (every call of this module
runs: panels, lines, ticks and their labels, texts) but neither lays it out, renders it
nor writes the PNG: ``dl-smoke`` checks a run's wiring this way (a label list that does
not match the classes fails when the ticks are set), without the ~0.3 s of CPU that
matplotlib's layout and rasterising take per figure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:  # the worker that draws imports no torch
    from dltrain.records.roc_points import RocCurve

Row = Mapping[str, float]

#: (panel title, y label, metric suffix) of the learning-curve panels.
PANELS = (("Loss", "cross-entropy loss", "loss"), ("Accuracy", "accuracy", "acc"))
#: The same for regression runs (rows with ``*/rmse``).
REGRESSION_PANELS = (("Loss", "loss (standardised target)", "loss"), ("RMSE", "RMSE", "rmse"))


def _series(rows: Sequence[Row], key: str) -> tuple[list[float], list[float]]:
    points = [(r["epoch"], r[key]) for r in rows if key in r and r[key] == r[key]]  # no NaN
    return [p[0] for p in points], [p[1] for p in points]


def _epoch_axis(ax, label: str = "epoch") -> None:  # noqa: ANN001 - a matplotlib Axes
    """Whole epochs on the x axis: each one when few (a single epoch too), else a few."""
    ax.set_xlabel(label)
    epochs = sorted({int(x) for line in ax.get_lines() for x in line.get_xdata()})
    if 0 < len(epochs) <= 12:
        ax.set_xticks(epochs)
        ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


_rendering = True


@contextlib.contextmanager
def building_only(on: bool = True) -> Iterator[None]:
    """Figures built but not rendered nor written while the block runs (``on``); see
    the module docstring."""
    global _rendering
    before, _rendering = _rendering, not on
    try:
        yield
    finally:
        _rendering = before


def _save(fig: Figure, path: Path, samples: int | None = None) -> Path:
    """Write the PNG. Every figure here uses constrained layout, which already fits the
    labels inside the canvas; ``bbox_inches="tight"`` would draw each figure twice (40%
    of the time of the three figures a run leaves). ``samples``: how many samples the
    figure shows, kept in the PNG's ``Samples`` text field (a check for readers)."""
    if not _rendering:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Samples": str(samples)} if samples is not None else None
    fig.savefig(path, dpi=110, metadata=metadata)
    return path


def learning_curves(
    rows: Sequence[Row], path: Path, title: str = "Learning curves", x_label: str = "epoch"
) -> Path:
    """Train and validation loss and accuracy (RMSE for regression) per epoch (or
    boosting round), side by side."""
    regression = any("val/rmse" in r or "train/rmse" in r for r in rows)
    panels = REGRESSION_PANELS if regression else PANELS
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, len(panels))
    for ax, (name, ylabel, suffix) in zip(axes, panels, strict=True):
        for stage in ("train", "val"):
            x, y = _series(rows, f"{stage}/{suffix}")
            if x:
                ax.plot(x, y, marker="o" if len(x) <= 60 else None, markersize=4, label=stage)
        ax.set_title(name)
        ax.set_ylabel(ylabel)
        _epoch_axis(ax, x_label)
        if ax.has_data():
            ax.legend()
    fig.suptitle(title)
    return _save(fig, path)


def learning_rate(rows: Sequence[Row], path: Path) -> Path:
    """The learning rate of each parameter group per epoch (log scale)."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    keys = sorted({k for r in rows for k in r if k.startswith("lr")})
    for key in keys:
        x, y = _series(rows, key)
        ax.plot(x, y, marker="o", markersize=4, label=key)
    if keys and all(v > 0 for k in keys for v in _series(rows, k)[1]):
        ax.set_yscale("log")
    ax.set_title("Learning rate")
    ax.set_ylabel("learning rate")
    _epoch_axis(ax)
    if len(keys) > 1:
        ax.legend()
    return _save(fig, path)


def confusion_matrix(
    matrix: np.ndarray, path: Path, class_names: Sequence[str] | None = None
) -> Path:
    """Row-normalised confusion matrix (counts written in the cells when they fit) and
    the accuracy of each class (the diagonal) as bars."""
    matrix = np.asarray(matrix, dtype=np.int64)
    n = matrix.shape[0]
    names = list(class_names) if class_names else [str(i) for i in range(n)]
    totals = matrix.sum(axis=1, keepdims=True)
    rates = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    per_class = np.diag(rates)
    overall = np.trace(matrix) / max(int(matrix.sum()), 1)

    side = min(max(5.0, 0.45 * n + 2), 16)
    fig = Figure(figsize=(side * 1.6, side), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.6, 1])
    image = left.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=left, label="fraction of the true class", shrink=0.8)
    ticks = np.arange(n)
    left.set_xticks(ticks, names, rotation=90 if n > 10 else 0)
    left.set_yticks(ticks, names)
    left.set_xlabel("predicted class")
    left.set_ylabel("true class")
    left.set_title(f"Confusion matrix (test, n={int(matrix.sum())})")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    color = "white" if rates[i, j] > 0.5 else "black"
                    left.text(
                        j,
                        i,
                        str(matrix[i, j]),
                        ha="center",
                        va="center",
                        color=color,
                        fontsize=8,
                        in_layout=False,  # inside its cell: not measured by the layout
                    )
    right.barh(ticks, per_class, color="tab:blue")
    right.set_yticks(ticks, names)
    right.invert_yaxis()  # same order as the matrix rows
    right.set_xlim(0, 1)
    right.set_xlabel("accuracy")
    right.set_ylabel("true class")
    right.set_title(f"Per-class accuracy (overall {overall:.1%})")
    right.grid(axis="x", alpha=0.3)
    if n <= 30:
        for i, v in enumerate(per_class):
            right.text(
                min(v, 0.98),
                i,
                f" {v:.0%}",
                va="center",
                ha="right" if v > 0.85 else "left",
                fontsize=8,
                color="white" if v > 0.85 else "black",
                in_layout=False,  # inside the bar's row, within the axes' x-range
            )
    return _save(fig, path)


def compare_runs(
    runs: Mapping[str, Sequence[Row]], path: Path, metrics: Sequence[str] = ("val/loss", "val/acc")
) -> Path:
    """One panel per metric, one line per run: how the selected runs learned."""
    fig = Figure(figsize=(5 * len(metrics), 4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for ax, metric in zip(axes, metrics, strict=True):
        for label, rows in runs.items():
            x, y = _series(rows, metric)
            if x:
                ax.plot(x, y, marker="o", markersize=4, label=label)
        ax.set_title(f"{metric} per epoch")
        ax.set_ylabel(metric)
        _epoch_axis(ax)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles, labels, loc="outside lower center", ncols=min(len(labels), 3), fontsize=8
        )
    fig.suptitle(f"Runs compared ({len(runs)})")
    return _save(fig, path)


def roc_curves(
    curves: Sequence[RocCurve],
    n_classes: int,
    samples: int,
    path: Path,
    class_names: Sequence[str] | None = None,
) -> Path:
    """ROC curve of the positive class (two classes) or one-vs-rest per class, with AUROC
    in the legend; the points come from records/roc_points.py (torchmetrics)."""
    names = list(class_names) if class_names else [str(i) for i in range(n_classes)]
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.subplots()
    for curve in curves:
        label = f"{names[curve.label]} (AUROC {curve.auroc:.3f})"
        ax.plot(curve.fpr, curve.tpr, label=label if n_classes <= 12 else None)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    kind = f"positive class {names[1]}" if n_classes == 2 else "one vs rest"
    ax.set_title(f"ROC (test, n={samples}, {kind})")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path, samples=samples)


def regression(pred: np.ndarray, true: np.ndarray, path: Path, label: str = "target") -> Path:
    """Predicted against true values (the diagonal is perfect) and the residuals against
    the prediction, on the test split."""
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    residual = true - pred
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    alpha = 0.6 if len(pred) < 2000 else 0.2
    left.scatter(true, pred, s=4, alpha=alpha)
    lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    left.plot([lo, hi], [lo, hi], color="black", linewidth=1)
    left.set_xlabel(f"true {label}")
    left.set_ylabel(f"predicted {label}")
    ss = float(((true - true.mean()) ** 2).sum())
    r2 = 1 - float((residual**2).sum()) / ss if ss > 0 else float("nan")
    left.set_title(f"Predicted vs true (test, n={len(true)}, R2 {r2:.4f})")
    right.scatter(pred, residual, s=4, alpha=alpha)
    right.axhline(0.0, color="black", linewidth=1)
    right.set_xlabel(f"predicted {label}")
    right.set_ylabel("residual (true - predicted)")
    rmse = float(np.sqrt((residual**2).mean()))
    right.set_title(f"Residuals (RMSE {rmse:.4g})")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return _save(fig, path, samples=len(true))
