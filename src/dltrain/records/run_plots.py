"""Plots of a run: learning curves, learning rate, and on the test split the confusion
matrix and ROC curves (classification) or predicted-vs-true and residuals (regression).

The callback keeps the per-epoch history itself (it does not depend on which logger
is configured), saves it with checkpoints and in ``history.json``, so a resumed run
plots every epoch. PNGs are (re)written at the end of fitting, at the start of a
resumed fit and after testing, by a worker process the run waits for at its end
(records/plot_worker.py), and not again from unchanged data.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from dltrain.data.loading.batches import PAD_LABEL
from dltrain.records import plot_worker, plotting
from dltrain.records.history import Row, merge_rows, read_history, write_history
from dltrain.records.roc_points import roc_points

log = logging.getLogger(__name__)


class RunPlots(Callback):
    """Write ``<output_dir>/plots/*.png`` and ``<output_dir>/history.json``.

    Args:
        output_dir: the run directory.
        num_classes: classes of the confusion matrix; ``None``: the data module's
            ``num_classes`` (a user's data module may have it only as an attribute).
        class_names: optional labels for the matrix axes (indices otherwise).
        render: ``False``: build every figure from the run's data without rendering or
            writing its PNG (``plotting.building_only``), as ``dl-smoke`` does.

    The confusion matrix needs the test predictions: ``test_step`` returns
    ``{"preds": ..., "target": ...}`` and a torchmetrics ``MulticlassConfusionMatrix``
    accumulates them on the device (synced across processes under DDP). With ``"probs"``
    too, the ROC curves are drawn from the probabilities; a regression ``test_step``
    returns ``{"values": ..., "target": ...}`` instead. Under DDP every rank's
    probabilities or values are gathered, and the padding samples of the evaluation
    shards dropped, so the ROC and predicted-vs-true plots cover exactly the samples
    the test metrics score (the count is in each PNG's ``Samples`` text field).
    """

    def __init__(
        self,
        output_dir: str,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        render: bool = True,
    ) -> None:
        self.run_dir = Path(output_dir)
        self.render = bool(render)
        self.plot_dir = self.run_dir / "plots"
        self.num_classes = int(num_classes) if num_classes is not None else None
        self.class_names = list(class_names) if class_names else None
        self.rows: list[Row] = []
        self._open: Row | None = None  # the epoch in progress
        self._confmat: MulticlassConfusionMatrix | None = None
        self._kept: dict[str, list[Any]] = {}  # test probabilities / values, on the CPU

    # ---- history ---------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            plot_worker.start()  # imports matplotlib beside the fit, not after it

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The restored epoch counter is known here (not yet in on_fit_start). Keep what
        # the checkpoint and this run dir's history.json know about earlier epochs.
        epoch = trainer.current_epoch
        if epoch > 0:
            disk = read_history(self.run_dir)
            self.rows = [r for r in merge_rows(self.rows, disk) if r["epoch"] < epoch]
            self._write_curves(trainer)
        else:
            self.rows = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close_epoch(trainer)
        lrs: Row = {}
        for i, opt in enumerate(trainer.optimizers):
            for j, group in enumerate(opt.param_groups):
                name = f"lr-{type(opt).__name__}" + (f"-{j}" if len(opt.param_groups) > 1 else "")
                lrs[name if i == 0 else f"{name}-opt{i}"] = float(group["lr"])
        self._open = {"epoch": trainer.current_epoch, **lrs}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close_epoch(trainer)
        self._write_curves(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        # A stopped run (pruned, failed, interrupted) still gets the epochs it completed.
        self._write_curves(trainer)

    def _close_epoch(self, trainer: pl.Trainer) -> None:
        """Complete the open epoch's row. Called at the next epoch's start (or the end):
        the module logs its train metrics after the callbacks' ``on_train_epoch_end``."""
        if self._open is None:
            return
        row = self._open
        for key, value in trainer.callback_metrics.items():
            # Learning rates were read at the epoch's start; callback_metrics may already
            # hold the next epoch's (the LR monitor logs them at epoch start too).
            if key.startswith(("test/", "lr-")) or value.numel() != 1:
                continue
            row[key] = float(value)
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        self._open = None
        if trainer.is_global_zero:
            write_history(self.run_dir, self.rows)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))

    # ---- confusion matrix ----------------------------------------------------------------
    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._kept = {"probs": [], "values": [], "target": []}
        classes = self.num_classes or getattr(trainer.datamodule, "num_classes", None)
        if isinstance(classes, int) and classes >= 2:
            # Padding samples of DDP evaluation shards carry label -100 (data/loading/batches.py).
            self._confmat = MulticlassConfusionMatrix(classes, ignore_index=PAD_LABEL).to(
                pl_module.device
            )

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not isinstance(outputs, dict):
            return
        if self._confmat is not None and "preds" in outputs:
            self._confmat.update(outputs["preds"], outputs["target"])
        for key in ("probs", "values"):
            if key in outputs:
                target = outputs["target"].detach()
                real = _real(target)  # no padding samples
                self._kept[key].append(outputs[key].detach()[real].float().cpu())
                self._kept["target"].append(target[real].cpu())

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        kept, self._kept = self._kept, {}
        names = self.class_names or getattr(trainer.datamodule, "classes", None)
        # Every rank gathers (each ran the same number of test batches); rank 0 draws.
        rows = {k: _gather_rows(trainer, v) for k, v in kept.items() if v and kept.get("target")}
        if trainer.is_global_zero and "target" in rows:
            target = rows["target"].numpy()
            if "probs" in rows:
                probs = rows["probs"].numpy()
                if np.isfinite(probs).all():
                    roc, curves = self.plot_dir / "roc.png", roc_points(probs, target)
                    n, samples = probs.shape[1], len(target)
                    self._submit(plotting.roc_curves, roc, curves, n, samples, roc, names)
                else:  # a diverged run (e.g. nan_policy=skip kept it going): nothing to rank
                    log.warning("roc.png not drawn: the test probabilities are not all finite")
            if "values" in rows:
                label = getattr(trainer.datamodule, "target_label", "target")
                path = self.plot_dir / "predicted_vs_true.png"
                values = rows["values"].numpy()
                self._submit(plotting.regression, path, values, target, path, label)
        if self._confmat is None or not self._confmat.update_called:
            return
        matrix = self._confmat.compute()  # every rank takes part in the sync
        self._confmat = None
        if trainer.is_global_zero:
            path = self.plot_dir / "confusion_matrix.png"
            cells = matrix.cpu().numpy()
            self._submit(plotting.confusion_matrix, path, cells, path, names)

    # ---- figures -------------------------------------------------------------------------
    def _write_curves(self, trainer: pl.Trainer) -> None:
        if not (trainer.is_global_zero and self.rows):
            return
        rows = [dict(r) for r in self.rows]  # as they are now: the list grows later
        curves, lr = self.plot_dir / "learning_curves.png", self.plot_dir / "learning_rate.png"
        self._submit(plotting.learning_curves, curves, rows, curves, self._title())
        self._submit(plotting.learning_rate, lr, rows, lr)

    def _submit(self, draw: Any, path: Path, *args: Any) -> None:
        plot_worker.submit(draw, path, *args, render=self.render)

    def _title(self) -> str:
        return f"Learning curves: {self.run_dir.name}"


def _gather_rows(trainer: pl.Trainer, parts: list[Tensor]) -> Tensor:
    """This rank's tensors concatenated, then every rank's rows (on the CPU). Without
    their padding samples the shards may differ in length, so each rank's rows are
    padded to the longest for Lightning's ``all_gather`` and trimmed after."""
    local = torch.cat(parts)
    if trainer.world_size == 1:
        return local
    strategy = trainer.strategy
    count = torch.tensor([len(local)], device=strategy.root_device)
    counts = strategy.all_gather(count).reshape(-1).tolist()
    padded = local.new_zeros((max(counts), *local.shape[1:]))
    padded[: len(local)] = local
    rows = strategy.all_gather(padded.to(strategy.root_device)).cpu()  # (world, longest, ...)
    return torch.cat([r[:n] for r, n in zip(rows, counts, strict=True)])


def _real(target: Tensor) -> Tensor:
    """The mask of real samples: padding carries ``PAD_LABEL`` (class labels) or
    ``PAD_TARGET`` (NaN, float targets) (``data/loading/batches.py``)."""
    return ~target.isnan() if target.is_floating_point() else target != PAD_LABEL
