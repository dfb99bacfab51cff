"""Progress output: a rich bar on a terminal, a few plain lines otherwise (CI logs).

Both show throughput in samples per second and the time left, so a long run tells
you when it will end.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from rich.progress import ProgressColumn, Task
from rich.text import Text


def loader_batch_size(loader: Any) -> int | None:
    """Samples per batch of a loader (``TensorBatches`` or a ``DataLoader``), if it says."""
    if isinstance(loader, (list, tuple)):  # Lightning's val/test loaders may be a list
        loader = loader[0] if loader else None
    size = getattr(loader, "batch_size", None)
    return int(size) if isinstance(size, int) and size > 0 else None


def format_duration(seconds: float) -> str:
    """``0:01:05``-style, like rich's time columns."""
    return str(timedelta(seconds=max(0, int(seconds))))


class SamplesPerSecondColumn(ProgressColumn):
    """Throughput in samples/s: rich measures batches/s; each task knows its batch size."""

    def __init__(self, style: str = "") -> None:
        self.style = style
        super().__init__()

    def render(self, task: Task) -> Text:
        per_batch = task.fields.get("samples_per_batch")
        if task.speed is None or not per_batch:
            return Text("", style=self.style)
        return Text(f"{task.speed * per_batch:,.0f} samples/s", style=self.style)


class RichBar(RichProgressBar):
    """Lightning's rich bar (elapsed, time left, batches/s) plus samples/s per stage."""

    def configure_columns(self, trainer: pl.Trainer) -> list:
        return [*super().configure_columns(trainer), SamplesPerSecondColumn(self.theme.time)]

    def _add_task(self, total_batches: int | float, description: str, visible: bool = True) -> Any:
        task_id = super()._add_task(total_batches, description, visible)
        assert self.progress is not None
        self.progress.update(task_id, samples_per_batch=self._stage_batch_size())
        return task_id

    def _stage_batch_size(self) -> int | None:
        trainer = self.trainer
        if trainer.testing:
            return loader_batch_size(trainer.test_dataloaders)
        if trainer.validating or trainer.sanity_checking:
            return loader_batch_size(trainer.val_dataloaders)
        if trainer.predicting:
            return loader_batch_size(trainer.predict_dataloaders)
        return loader_batch_size(trainer.train_dataloader)


class LogLinesProgress(ProgressBar):
    """One line per epoch (and every ``every_s`` seconds inside long epochs).

    Not a tqdm bar: redirected to a file, tqdm writes a carriage-return line per update.
    Each line carries throughput (samples/s) and the time left: of the epoch inside
    one, of the whole run at its end.
    """

    def __init__(self, every_s: float = 30.0) -> None:
        super().__init__()
        self._enabled = True
        self.every_s = every_s
        self._last = 0.0
        self._start = 0.0
        self._fit_start = 0.0
        self._first_epoch = 0
        self._batches = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_start = time.monotonic()
        self._first_epoch = trainer.current_epoch  # > 0 when resuming

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Epoch e-1 is reported here: the module logs its train metrics in its own
        # on_train_epoch_end, which Lightning calls after the callbacks'.
        if trainer.current_epoch > self._first_epoch:
            self._report(trainer, trainer.current_epoch - 1)
        self._start = self._last = time.monotonic()
        self._batches = 0

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report(trainer, trainer.current_epoch - 1)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        self._batches += 1
        now = time.monotonic()
        if not (self._enabled and now - self._last >= self.every_s and trainer.is_global_zero):
            return
        self._last = now
        took = now - self._start
        total = self.total_train_batches
        parts = [f"epoch {trainer.current_epoch}: batch {self._batches}/{total}"]
        parts.append(self._throughput(trainer, self._batches, took))
        if isinstance(total, int) and self._batches:
            left = took / self._batches * (total - self._batches)
            parts.append(f"epoch eta {format_duration(left)}")
        print("  ".join(p for p in parts if p), flush=True)

    def _report(self, trainer: pl.Trainer, epoch: int) -> None:
        if not (self._enabled and trainer.is_global_zero) or epoch < 0:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        shown = "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
        now = time.monotonic()
        parts = [f"epoch {epoch}: {now - self._start:.1f}s"]
        parts.append(self._throughput(trainer, self._batches, now - self._start))
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        done = epoch + 1 - self._first_epoch
        if max_epochs and done > 0 and epoch + 1 < max_epochs and not trainer.should_stop:
            left = (now - self._fit_start) / done * (max_epochs - epoch - 1)
            parts.append(f"eta {format_duration(left)}")
        parts.append(shown)
        print("  ".join(p for p in parts if p), flush=True)

    @staticmethod
    def _throughput(trainer: pl.Trainer, batches: int, seconds: float) -> str:
        per_batch = loader_batch_size(trainer.train_dataloader)
        if not per_batch or seconds <= 0 or not batches:
            return ""
        return f"{batches * per_batch / seconds:,.0f} samples/s"


def make_progress_bar() -> ProgressBar:
    """Rich bar when stdout is a terminal; plain periodic lines when it is not."""
    if sys.stdout.isatty():
        return RichBar()
    return LogLinesProgress()
