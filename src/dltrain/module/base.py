"""The built-in modules' base (Classifier, Regressor): optimizers and schedulers from
config factories, timing of the training epochs, and per-epoch training sums kept on
the device and in mid-epoch checkpoints. Gradient clipping is Lightning's own, under
FSDP too (checkpointing/fsdp.py).
Nothing here runs per training step but ``__setattr__`` (see there): each subclass's
``training_step`` is its own. Hyperparameters are plain values, so checkpoints open
with ``weights_only=True``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]
#: Value types ``RunModule.__setattr__`` stores without ``nn.Module``'s checks.
_PLAIN_VALUES = frozenset({str, int, float, bool, type(None)})


class RunModule(pl.LightningModule):
    """The shared part of the built-in modules (see the module docstring).

    Args:
        net: any ``nn.Module``.
        optimizer: ``params -> Optimizer`` (a Hydra ``_partial_``).
        scheduler: ``optimizer -> LR scheduler`` or ``None``.
        scheduler_interval: ``"epoch"`` or ``"step"``.
        monitor: metric a plateau scheduler watches.
    """

    #: Length of the training sums vector a subclass accumulates per epoch.
    train_sums_size = 2

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        monitor: str = "val/acc",
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.monitor = monitor
        self.samples_seen = 0
        # Seconds inside training epochs (steps and per-step hooks; no setup, validation
        # or checkpoint writes): results.json's train_s, the per-step cost benchmarks use.
        self.train_seconds = 0.0
        self._epoch_started: float | None = None
        # The training epoch's running sums (``train_sums_size``) and sample count;
        # follow the module's device (``_apply``).
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

    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> RunModule:
        """``.to()``/``.cuda()`` move the epoch's running sums with the module. Why: they are
        a plain tensor, not a buffer (DDP would overwrite every rank's buffers with rank
        0's at each forward), and DDP's mid-epoch resume restores them before Lightning
        moves the module to its device (FSDP's order: ``on_load_checkpoint``). Only the
        device changes: fp32 sums stay fp32."""
        super()._apply(fn, recurse)
        if self._train_sums is not None:
            device = fn(torch.empty(0, device=self._train_sums.device)).device
            self._train_sums = self._train_sums.to(device)
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    # ---- training sums and time --------------------------------------------------------
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Lightning skips on_train_epoch_start when it resumes inside an epoch: continue
        that epoch's sums (an epoch-end checkpoint's are reset at the next epoch start).

        Restored onto the module's device (``self.device``: the strategy's root device,
        which Lightning sets before any restore), not where the checkpoint was loaded.
        Why: FSDP restores *after* placing the module and never moves it again, so sums
        left on the CPU would meet the step's CUDA tensors (and the save hook's NCCL
        reduce). Where the restore comes first (DDP), the move follows (``_apply``)."""
        stored = checkpoint.get("dltrain_train_sums")
        if stored is not None:
            self._train_sums = stored[0].to(device=self.device, dtype=torch.float32)
            self._train_count = int(stored[1])
            self._epoch_started = time.monotonic()

    def on_train_epoch_start(self) -> None:
        # Training sums on the device, read once per epoch. Hand-written instead of
        # torchmetrics objects: their per-step update (argument checks, state
        # bookkeeping) costs as much as a small net's whole step.
        self._train_sums = torch.zeros(self.train_sums_size, device=self.device)
        self._train_count = 0
        self._epoch_started = time.monotonic()

    def train_sums_snapshot(self) -> tuple[Tensor | None, int]:
        """The epoch's training sums and sample count so far. A NaN guard that drops a
        batch (``nan_policy=skip``) takes one before the batch and puts it back with
        ``restore_train_sums``, so the skipped batch does not enter ``train/loss``."""
        sums = self._train_sums.clone() if self._train_sums is not None else None
        return sums, self._train_count

    def restore_train_sums(self, snapshot: tuple[Tensor | None, int]) -> None:
        sums, count = snapshot
        if sums is not None and self._train_sums is not None:
            self._train_sums.copy_(sums)
        self._train_count = count

    def _end_train_timing(self) -> None:
        if self._epoch_started is not None:
            self.train_seconds += time.monotonic() - self._epoch_started
            self._epoch_started = None

    def on_validation_start(self) -> None:
        self._val_started = time.monotonic()

    def on_validation_end(self) -> None:
        # Validation inside a training epoch does not count toward train_seconds.
        if self._epoch_started is not None:
            self._epoch_started += time.monotonic() - self._val_started

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
        # The run's config and data statistics are stored by a callback (run_record.py).
        if self._train_sums is not None and self._trainer is not None:  # the epoch's sums
            # The mean over ranks (every rank calls this hook; shards are equal), so a
            # resumed DDP run's epoch metrics are the uninterrupted run's.
            sums = self.trainer.strategy.reduce(self._train_sums.clone(), reduce_op="mean")
            checkpoint["dltrain_train_sums"] = [sums.cpu(), self._train_count]
