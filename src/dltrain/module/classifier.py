"""The default LightningModule (``module=classifier``): cross-entropy classification
around any network.

It knows nothing of a particular net, and its hyperparameters are plain values, so
checkpoints open with ``torch.load(..., weights_only=True)``; the model itself is
rebuilt from the config stored next to the weights. Optimizers, schedulers, clipping,
timing and the training sums' bookkeeping are ``module/base.py``'s (shared with the
Regressor); the per-step path (``training_step``) is this module's own.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from dltrain.module import metrics as extra_metrics
from dltrain.module.base import OptimizerFactory, RunModule, SchedulerFactory
from dltrain.module.metrics import IGNORE_INDEX


class Classifier(RunModule):
    """Train/validate/test a classifier; logs ``{train,val,test}/{loss,acc}`` and
    ``val/acc_best``, plus the metrics named in ``metrics`` (e.g. ``test/auroc``).

    Args:
        net: any ``nn.Module`` mapping a batch of inputs to class logits.
        num_classes: number of classes (for the accuracy metric).
        optimizer: ``params -> Optimizer`` (a Hydra ``_partial_``).
        scheduler: ``optimizer -> LR scheduler`` or ``None``.
        scheduler_interval: ``"epoch"`` or ``"step"``.
        monitor: metric a plateau scheduler watches.
        metrics: more metrics by stage, ``{"test": ["auroc", "f1_macro"], "val": [...]}``,
            logged as ``<stage>/<name>`` beside accuracy (names: ``module/metrics.py``).
            Validation ones cost a pass over the stored probabilities every epoch.

    The run's config and input statistics go into checkpoints through a callback
    (``checkpointing/run_record.py``), as for any module.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        monitor: str = "val/acc",
        metrics: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(net, optimizer, scheduler, scheduler_interval, monitor)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro", ignore_index=IGNORE_INDEX)
        self.test_acc = MulticlassAccuracy(num_classes, average="micro", ignore_index=IGNORE_INDEX)
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        extra_metrics.check_metric_names(metrics)
        metrics = metrics or {}
        # Modules, so they follow the module's device; empty dicts cost nothing per step.
        self.val_extra = nn.ModuleDict(
            extra_metrics.build_metrics(list(metrics.get("val") or ()), num_classes)
        )
        self.test_extra = nn.ModuleDict(
            extra_metrics.build_metrics(list(metrics.get("test") or ()), num_classes)
        )
        self.val_acc_best = MaxMetric()
        # The best score is part of checkpoints: a resumed run keeps it.
        self.val_acc_best.persistent(True)

    def _step(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        logits = self.net(x)
        return F.cross_entropy(logits, y), logits, y

    # ---- train ------------------------------------------------------------------------
    # (loss sum, correct): the training epoch's running sums (``RunModule``).
    train_sums_size = 2

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, logits, y = self._step(batch)
        n = y.shape[0]
        self.samples_seen += n  # plain ints: counting costs no device sync
        self._train_count += n
        with torch.no_grad():
            self._train_sums.add_(torch.stack((loss * n, (logits.argmax(-1) == y).sum())))
        return loss

    def on_train_epoch_end(self) -> None:
        self._end_train_timing()
        # No sample counted (every batch skipped by nan_policy=skip): NaN, not 0.
        loss_sum, correct = self._train_sums / (self._train_count or float("nan"))
        # Equal shards on every rank, so the mean over ranks is the global value.
        self.log("train/loss", loss_sum, sync_dist=True)
        self.log("train/acc", correct, sync_dist=True)

    # ---- validate ------------------------------------------------------------------------
    def _eval_step(
        self, batch: tuple[Tensor, Tensor], loss_metric: MeanMetric, acc: MulticlassAccuracy
    ) -> tuple[Tensor, Tensor]:
        """Loss and accuracy of one evaluation batch, without its padding samples (label
        ``IGNORE_INDEX``: evaluation shards are padded to equal length under DDP)."""
        x, y = batch
        logits = self.net(x)
        n = (y != IGNORE_INDEX).sum()
        loss = F.cross_entropy(logits, y, reduction="sum", ignore_index=IGNORE_INDEX)
        loss_metric.update(loss / n.clamp_min(1), weight=n)
        acc.update(logits, y)
        return logits, y

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        logits, y = self._eval_step(batch, self.val_loss, self.val_acc)
        _update_extra(self.val_extra, logits, y)

    def on_validation_epoch_end(self) -> None:
        acc = self.val_acc.compute()
        if not self.trainer.sanity_checking:  # the sanity check must not count as best
            self.val_acc_best.update(acc)
        self.log("val/loss", self.val_loss.compute(), prog_bar=True)
        self.log("val/acc", acc, prog_bar=True)
        self.log("val/acc_best", self.val_acc_best.compute())
        self.val_loss.reset()
        self.val_acc.reset()
        _log_extra(self, self.val_extra, "val")

    # ---- test ------------------------------------------------------------------------------
    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        logits, y = self._eval_step(batch, self.test_loss, self.test_acc)
        _update_extra(self.test_extra, logits, y)
        # For callbacks (the confusion-matrix and ROC plots, which ignore IGNORE_INDEX
        # labels of padding samples); Lightning does not keep them.
        return {"preds": logits.argmax(-1), "probs": logits.float().softmax(-1), "target": y}

    def on_test_epoch_end(self) -> None:
        self.log("test/loss", self.test_loss.compute())
        self.log("test/acc", self.test_acc.compute())
        self.test_loss.reset()
        self.test_acc.reset()
        _log_extra(self, self.test_extra, "test")

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self.net(batch[0]).softmax(-1)


def _update_extra(metrics: nn.ModuleDict, logits: Tensor, y: Tensor) -> None:
    if len(metrics):
        probs = logits.float().softmax(-1)
        for metric in metrics.values():
            extra_metrics.update(metric, probs, y)


def _log_extra(module: pl.LightningModule, metrics: nn.ModuleDict, stage: str) -> None:
    for name, metric in metrics.items():
        if metric.update_called:
            module.log(f"{stage}/{name}", metric.compute())
        metric.reset()
