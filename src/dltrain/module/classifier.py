"""The default LightningModule (``module=classifier``): cross-entropy classification
around any network.

It knows nothing of a particular net, and its hyperparameters are plain values, so
checkpoints open with ``torch.load(..., weights_only=True)``; the model itself is
rebuilt from the config stored next to the weights.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from dltrain.module import metrics as extra_metrics
from dltrain.module.metrics import IGNORE_INDEX

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]
#: Value types ``Classifier.__setattr__`` stores without ``nn.Module``'s checks.
_PLAIN_VALUES = frozenset({str, int, float, bool, type(None)})


class Classifier(pl.LightningModule):
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
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.monitor = monitor
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
        self.samples_seen = 0
        # Seconds inside training epochs (steps and per-step hooks; no setup, validation
        # or checkpoint writes): results.json's train_s, the per-step cost benchmarks use.
        self.train_seconds = 0.0
        self._epoch_started: float | None = None
        # (loss sum, correct) of the training epoch so far; follows the module's device.
        self._train_sums: Tensor | None = None
        self._train_count = 0

    def __setattr__(self, name: str, value: Any) -> None:
        """A plain value (string, number, None) for an existing plain attribute skips
        ``nn.Module``'s checks. Why: Lightning sets ``_current_fx_name`` before and after
        every hook call, ~45 times a training step, and ``nn.Module.__setattr__`` tests
        each value against Parameter and Buffer (custom ``isinstance`` checks, ~1-2 us):
        ~0.06 ms a step. Such a value never becomes a parameter, buffer or submodule, and a
        name in ``__dict__`` is none of those, so the outcome is the same."""
        if type(value) in _PLAIN_VALUES and name in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> Classifier:
        """``.to()``/``.cuda()`` move the epoch's running sums with the module. Why: they are
        a plain tensor, not a buffer (DDP would overwrite every rank's buffers with rank
        0's at each forward), and a mid-epoch resume restores them before Lightning moves
        the module to its device. Only the device changes: fp32 sums stay fp32."""
        super()._apply(fn, recurse)
        if self._train_sums is not None:
            device = fn(torch.empty(0, device=self._train_sums.device)).device
            self._train_sums = self._train_sums.to(device)
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _step(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        logits = self.net(x)
        return F.cross_entropy(logits, y), logits, y

    # ---- train ------------------------------------------------------------------------
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning skips on_train_epoch_start when it resumes inside an epoch: continue
        # that epoch's sums (an epoch-end checkpoint's are reset at the next epoch start).
        # Kept where the checkpoint was loaded (CPU): Lightning moves the module, and with
        # it these sums (``_apply``), to its device only after restoring.
        stored = checkpoint.get("dltrain_train_sums")
        if stored is not None:
            self._train_sums, self._train_count = stored[0].float(), int(stored[1])
            self._epoch_started = time.monotonic()

    def on_train_epoch_start(self) -> None:
        # Training loss and accuracy as running sums on the device, read once per epoch.
        # Hand-written instead of torchmetrics objects: their per-step update (argument
        # checks, state bookkeeping) costs as much as a small net's whole step.
        self._train_sums = torch.zeros(2, device=self.device)
        self._train_count = 0
        self._epoch_started = time.monotonic()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, logits, y = self._step(batch)
        n = y.shape[0]
        self.samples_seen += n  # plain ints: counting costs no device sync
        self._train_count += n
        with torch.no_grad():
            self._train_sums.add_(torch.stack((loss * n, (logits.argmax(-1) == y).sum())))
        return loss

    def on_train_epoch_end(self) -> None:
        if self._epoch_started is not None:
            self.train_seconds += time.monotonic() - self._epoch_started
            self._epoch_started = None
        loss_sum, correct = self._train_sums / max(self._train_count, 1)
        # Equal shards on every rank, so the mean over ranks is the global value.
        self.log("train/loss", loss_sum, sync_dist=True)
        self.log("train/acc", correct, sync_dist=True)

    # ---- validate ------------------------------------------------------------------------
    def on_validation_start(self) -> None:
        self._val_started = time.monotonic()

    def on_validation_end(self) -> None:
        # Validation inside a training epoch does not count toward train_seconds.
        if self._epoch_started is not None:
            self._epoch_started += time.monotonic() - self._val_started

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

    # ---- optimisation --------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        # A net may split its parameters into groups (e.g. a head with its own lr).
        groups = getattr(self.net, "param_groups", None)
        optimizer = self.optimizer_factory(params=groups() if groups else self.parameters())
        for group in optimizer.param_groups:  # rates relative to optimizer.lr (lr_scale)
            group["lr"] *= group.pop("lr_scale", 1.0)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self._make_scheduler(optimizer)
        config = {"scheduler": scheduler, "interval": self.scheduler_interval}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = self.monitor
        return {"optimizer": optimizer, "lr_scheduler": config}

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Under FSDP each rank holds a shard of the gradients, so their norm is FSDP's
        to compute (``FullyShardedDataParallel.clip_grad_norm_``, over all shards);
        Lightning refuses norm clipping there. Elsewhere Lightning's own clipping."""
        model = self.trainer.strategy.model
        if gradient_clip_val and gradient_clip_algorithm in (None, "norm"):
            clip = getattr(model, "clip_grad_norm_", None)  # only FSDP's root has it
            if clip is not None:
                clip(gradient_clip_val)
                return
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def _make_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        factory = self.scheduler_factory
        target = getattr(factory, "func", factory)
        if "total_steps" in inspect.signature(target).parameters:
            # The total length is only known once the trainer has seen the data.
            return factory(
                optimizer=optimizer, total_steps=int(self.trainer.estimated_stepping_batches)
            )
        return factory(optimizer=optimizer)

    # ---- checkpoints ------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._train_sums is not None and self._trainer is not None:  # the epoch's sums
            # The mean over ranks (every rank calls this hook; shards are equal), so a
            # resumed DDP run's epoch metrics are the uninterrupted run's.
            sums = self.trainer.strategy.reduce(self._train_sums.clone(), reduce_op="mean")
            checkpoint["dltrain_train_sums"] = [sums.cpu(), self._train_count]


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
