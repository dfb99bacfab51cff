"""Stopping on SIGTERM/SIGINT: finish the current batch, save ``last.ckpt``, say how to resume.

Lightning already turns SIGTERM into a clean stop at the next batch boundary (and
broadcasts it to every DDP rank). ``StopOnSignal`` routes a first Ctrl+C (SIGINT)
through the same path, writes ``checkpoints/last.ckpt`` when the stop arrives, and
``interruption`` turns Lightning's ``SIGTERMException`` into a one-line error with
the command that continues the run. A second Ctrl+C stops at once.
"""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Any

import lightning.pytorch as pl
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


class StopOnSignal(Callback):
    """Save ``last.ckpt`` when SIGTERM or SIGINT stops training."""

    def __init__(self, last_path: Path) -> None:
        self.last_path = Path(last_path)
        self.signum: int | None = None
        self.saved: Path | None = None
        self._chained: Any = None
        self._old_int: Any = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning registers its SIGTERM handler just before training starts.
        self._chained = signal.getsignal(signal.SIGTERM)
        self._old_int = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        _ACTIVE.add(id(self))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl+C: stop now
        self.signum = self.signum or signum
        if callable(self._chained):  # Lightning's: sets trainer.received_sigterm
            self._chained(signal.SIGTERM, frame)

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
