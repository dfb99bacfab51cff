"""Stopping on SIGTERM/SIGINT: finish the current batch, save ``last.ckpt``, say how to resume.

Lightning already turns SIGTERM into a clean stop at the next batch boundary (and
broadcasts it to every DDP rank). ``StopOnSignal`` routes a first Ctrl+C (SIGINT)
through the same path, writes ``checkpoints/last.ckpt`` when the stop arrives, and
``interruption`` turns Lightning's ``SIGTERMException`` into a one-line error with
the command that continues the run. A second Ctrl+C stops at once.

Under DDP the stop is collective. Lightning's own SIGTERM handler broadcasts from inside
the signal handler, at whatever point each rank happens to be: paired with a gradient
all-reduce on another rank, both wait for ever (seen with ``trainer=ddp_cpu``). Here a
signal only sets a flag on the rank that received it; after each training batch the
ranks all-reduce their flags and, when any is set, all set Lightning's
``received_sigterm`` together, so every rank stops after the same batch, saves the same
``last.ckpt`` (written once, by rank 0) and only rank 0 prints the resume command.
"""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from dltrain.errors import UserError

#: StopOnSignal callbacks whose training runs in this process right now.
_ACTIVE: set[int] = set()


def training_in_progress() -> bool:
    """Whether a run in this process handles SIGTERM itself (a sweep then lets it save
    its checkpoint and stop first)."""
    return bool(_ACTIVE)


class Interrupted(UserError):
    """The run was stopped by a signal after saving a checkpoint; exit 128 + signal."""

    def __init__(self, what: str, fix: str, signum: int) -> None:
        super().__init__(what, fix)
        self.exit_code = 128 + signum
        self.all_ranks = True  # every DDP rank stops with it: only rank 0 prints it


class StopOnSignal(Callback):
    """Save ``last.ckpt`` when SIGTERM or SIGINT stops training."""

    def __init__(self, last_path: Path) -> None:
        self.last_path = Path(last_path)
        self.signum: int | None = None
        self.saved: Path | None = None
        self._world_size = 1
        self._chained: Any = None
        self._old_int: Any = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning registers its SIGTERM handler just before training starts.
        self._world_size = trainer.world_size
        self._chained = signal.getsignal(signal.SIGTERM)
        self._old_int = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        _ACTIVE.add(id(self))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl+C: stop now
        self.signum = self.signum or signum
        if self._world_size > 1:
            return  # decided together after the batch (on_train_batch_end)
        if callable(self._chained):  # Lightning's: sets trainer.received_sigterm
            self._chained(signal.SIGTERM, frame)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        """Under DDP: stop on every rank when any rank got a signal (one all-reduce)."""
        if self._world_size < 2:
            return
        # One all-reduce (no barrier first, unlike strategy.reduce); Lightning reads its
        # own SIGTERM broadcast back every step already, so the read adds no new sync.
        flag = torch.tensor([self.signum or 0], device=trainer.strategy.root_device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        signum = int(flag.item())
        if signum:
            self.signum = self.signum or signum
            # Lightning raises SIGTERMException on it after this batch, on every rank.
            trainer._signal_connector.received_sigterm = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._restore()
        if not isinstance(exception, SIGTERMException):
            return
        self.signum = self.signum or signal.SIGTERM
        # A stop inside validation keeps the previous last.ckpt: Lightning resumes
        # exactly only from a training-batch boundary.
        if trainer.training and trainer.checkpoint_callback is not None:
            trainer.save_checkpoint(self.last_path)
            self.saved = self.last_path
        # Read by ``interruption`` once the exception reaches the recipe.
        exception.signum = self.signum  # type: ignore[attr-defined]
        exception.saved = self.saved  # type: ignore[attr-defined]

    def _restore(self) -> None:
        _ACTIVE.discard(id(self))
        if self._old_int is not None:
            signal.signal(signal.SIGINT, self._old_int)
            self._old_int = None


def interruption(ex: BaseException, run_dir: Path) -> Interrupted | None:
    """The user-facing error for a run stopped by a signal, or ``None`` for other errors."""
    from dltrain.checkpointing.resume import LAST, resume_command

    if not isinstance(ex, SIGTERMException):
        return None
    signum = getattr(ex, "signum", None) or signal.SIGTERM
    name = signal.Signals(signum).name
    last = run_dir / LAST
    if getattr(ex, "saved", None) is not None:
        what = f"stopped by {name}; saved {last}"
    elif last.is_file():
        what = f"stopped by {name}; the latest checkpoint is {last}"
    else:
        what = f"stopped by {name} before any checkpoint was written"
    return Interrupted(what, f"resume with: {resume_command(run_dir)}", signum)
