"""Progress output: a rich bar on a terminal, a few plain lines otherwise (CI logs)."""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar


class LogLinesProgress(ProgressBar):
    """One line per epoch (and every ``every_s`` seconds inside long epochs).

    Not a tqdm bar: redirected to a file, tqdm writes a carriage-return line per update.
    """

    def __init__(self, every_s: float = 30.0) -> None:
        super().__init__()
        self._enabled = True
        self.every_s = every_s
        self._last = 0.0
        self._start = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Epoch e-1 is reported here: the module logs its train metrics in its own
        # on_train_epoch_end, which Lightning calls after the callbacks'.
        if trainer.current_epoch > 0:
            self._report(trainer, trainer.current_epoch - 1)
        self._start = self._last = time.monotonic()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report(trainer, trainer.current_epoch - 1)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        now = time.monotonic()
        if self._enabled and now - self._last >= self.every_s and trainer.is_global_zero:
            self._last = now
            done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
            print(
                f"epoch {trainer.current_epoch}: batch {done}/{self.total_train_batches}",
                flush=True,
            )

    def _report(self, trainer: pl.Trainer, epoch: int) -> None:
        if not (self._enabled and trainer.is_global_zero) or epoch < 0:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        shown = "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
        took = time.monotonic() - self._start
        print(f"epoch {epoch}: {took:.1f}s  {shown}", flush=True)


def make_progress_bar() -> ProgressBar:
    """Rich bar when stdout is a terminal; plain periodic lines when it is not."""
    if sys.stdout.isatty():
        return RichProgressBar()
    return LogLinesProgress()
