"""The Regressor's base: optimizers and schedulers from config factories, timing of the
training epochs, and a per-epoch training sum kept on the device (as the Classifier
does them; the Classifier keeps its own, tuned for DDP and the per-step benchmarks).
Hyperparameters are plain values, so checkpoints open with ``weights_only=True``.
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

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    # ---- training sums and time --------------------------------------------------------
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning skips on_train_epoch_start when it resumes inside an epoch: continue
        # that epoch's sums (an epoch-end checkpoint's are reset at the next epoch start).
        stored = checkpoint.get("dltrain_train_sums")
        if stored is not None:
            self._train_sums, self._train_count = stored[0].to(self.device), int(stored[1])
            self._epoch_started = time.monotonic()

    def on_train_epoch_start(self) -> None:
        # Training sums on the device, read once per epoch. Hand-written instead of
        # torchmetrics objects: their per-step update (argument checks, state
        # bookkeeping) costs as much as a small net's whole step.
        self._train_sums = torch.zeros(self.train_sums_size, device=self.device)
        self._train_count = 0
        self._epoch_started = time.monotonic()

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
        if getattr(self, "_train_sums", None) is not None:  # the epoch's sums so far
            checkpoint["dltrain_train_sums"] = [self._train_sums.cpu(), self._train_count]
