"""Stopping on SIGTERM/SIGINT, and SLURM's requeue signal: finish the current batch, save
``last.ckpt`` once, say how to resume (or requeue the job).

Lightning already turns SIGTERM into a clean stop at the next batch boundary (and
broadcasts it to every DDP rank). ``StopOnSignal`` routes a first Ctrl+C (SIGINT)
through the same path, writes ``checkpoints/last.ckpt`` when the stop arrives, and
``interruption`` turns Lightning's ``SIGTERMException`` into a one-line error with
the command that continues the run. A second Ctrl+C stops at once.

Under DDP the stop is collective. Lightning's own SIGTERM handler broadcasts from inside
the signal handler, at whatever point each rank happens to be: paired with a gradient
all-reduce on another rank, both wait for ever (seen with ``trainer=ddp_cpu``). Its
SLURM requeue handler (SIGUSR1) is worse: it saves a checkpoint inside the handler on
every rank, and the save hooks run collectives. Here a signal only sets a flag on the
rank that received it; every ``check_every_n_steps`` training batches (and at each
epoch's last batch) the ranks all-reduce their flags in one small collective and, when
any is set, all set Lightning's ``received_sigterm`` together, so every rank stops after
the same batch, saves the same ``last.ckpt`` (written once, by rank 0) and only rank 0
prints the resume command, or, for SIGUSR1 on SLURM, runs ``scontrol requeue`` as
Lightning does; the requeued job continues from ``last.ckpt`` (``resume=auto``).
Lightning's own per-batch broadcast of its SIGTERM flag (a host sync every step) is
switched off under DDP: this decision replaces it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from types import FrameType
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from dltrain.errors import UserError

#: StopOnSignal callbacks whose training runs in this process right now.
_ACTIVE: set[int] = set()

#: Batches between two cross-rank checks of the signal flags under DDP: one small
#: all-reduce and one read per 16 steps; a signal is acted on within 16 steps.
CHECK_EVERY_N_STEPS = 16


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
    """Save ``last.ckpt`` when SIGTERM, SIGINT or (on SLURM) the requeue signal stops
    training; requeue the SLURM job after the save."""

    def __init__(self, last_path: Path, check_every_n_steps: int = CHECK_EVERY_N_STEPS) -> None:
        self.last_path = Path(last_path)
        self.check_every_n_steps = max(1, int(check_every_n_steps))
        self.signum: int | None = None
        self.requeue = False  # the requeue signal arrived (on this rank, or any after a check)
        self.requeued: str | None = None  # rank 0: what ``scontrol requeue`` answered
        self.saved: Path | None = None
        self._world_size = 1
        self._batches = 0
        self._trainer: pl.Trainer | None = None
        self._chained: Any = None
        self._old_int: Any = None
        self._requeue_signal: int | None = None
        self._old_requeue: Any = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """On SLURM, take the requeue signal from Lightning before it registers its
        handler (which saves inside the handler): ``auto_requeue`` off, this one on."""
        env = trainer._accelerator_connector.cluster_environment
        if stage != "fit" or not isinstance(env, SLURMEnvironment) or not env.auto_requeue:
            return
        if env.requeue_signal is None:
            return
        env.auto_requeue = False  # Lightning registers no SIGUSR1 handler then
        self._trainer = trainer
        self._requeue_signal = int(env.requeue_signal)
        self._old_requeue = signal.getsignal(self._requeue_signal)
        signal.signal(self._requeue_signal, self._on_requeue_signal)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning registers its SIGTERM handler just before training starts.
        self._trainer = trainer
        self._world_size = trainer.world_size
        self._batches = 0
        self._chained = signal.getsignal(signal.SIGTERM)
        self._old_int = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        connector = trainer._signal_connector
        originals = getattr(connector, "_original_handlers", None)
        if self._requeue_signal is not None and isinstance(originals, dict):
            # Lightning's teardown puts back what it found: the handler before ours.
            originals[self._requeue_signal] = self._old_requeue
        loop = trainer.fit_loop.epoch_loop
        if self._world_size > 1 and hasattr(loop, "_broadcast_sigterm_tensor"):
            loop._broadcast_sigterm_tensor = _no_broadcast  # decided here, every N steps
        _ACTIVE.add(id(self))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl+C: stop now
        self.signum = self.signum or signum
        if self._world_size > 1:
            return  # decided together after a batch (on_train_batch_end)
        if callable(self._chained):  # Lightning's: sets trainer.received_sigterm
            self._chained(signal.SIGTERM, frame)

    def _on_requeue_signal(self, signum: int, frame: FrameType | None) -> None:
        """Only flags: the save and the requeue happen at a batch boundary."""
        self.requeue = True
        self.signum = self.signum or signum
        if self._world_size < 2 and self._trainer is not None:
            self._trainer._signal_connector.received_sigterm = True

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Under DDP, every N batches and at the epoch's last: stop on every rank when
        any rank got a signal (one all-reduce of two numbers, no barrier)."""
        if self._world_size < 2:
            return
        self._batches += 1
        last = batch_idx + 1 >= trainer.num_training_batches
        if self._batches % self.check_every_n_steps and not last:
            return
        device = trainer.strategy.root_device
        flags = torch.tensor([self.signum or 0, int(self.requeue)], device=device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        signum, requeue = (int(v) for v in flags.tolist())
        if signum:
            self.signum = self.signum or signum
            self.requeue = bool(requeue)
            # Lightning raises SIGTERMException on it after this batch, on every rank.
            trainer._signal_connector.received_sigterm = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
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
            trainer.save_checkpoint(self.last_path)  # collective; written by rank 0
            self.saved = self.last_path
        if self.requeue and trainer.is_global_zero:
            self.requeued = requeue_slurm_job()
        # Read by ``interruption`` once the exception reaches the recipe.
        exception.signum = self.signum  # type: ignore[attr-defined]
        exception.saved = self.saved  # type: ignore[attr-defined]
        exception.requeued = self.requeued  # type: ignore[attr-defined]

    def _restore(self) -> None:
        _ACTIVE.discard(id(self))
        if self._old_int is not None:
            signal.signal(signal.SIGINT, self._old_int)
            self._old_int = None
        if self._requeue_signal is not None:
            signal.signal(self._requeue_signal, self._old_requeue)
            self._requeue_signal = None


def _no_broadcast() -> None:
    """Stands in for Lightning's per-batch SIGTERM broadcast (StopOnSignal decides)."""


def requeue_slurm_job() -> str:
    """``scontrol requeue <job>``, as Lightning's handler runs it; what happened, in words."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
        job = f"{array_job}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    else:
        job = os.environ.get("SLURM_JOB_ID", "")
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    except OSError as ex:
        return f"requeueing SLURM job {job} failed ({ex.strerror}: scontrol)"
    if done.returncode:
        said = (done.stderr or done.stdout).strip().splitlines()
        detail = f": {said[-1]}" if said else ""
        return f"requeueing SLURM job {job} failed (scontrol exit {done.returncode}{detail})"
    return f"requeued SLURM job {job}"


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
    requeued = getattr(ex, "requeued", None)
    if requeued and not requeued.startswith("requeueing"):
        return Interrupted(what, f"{requeued}; it continues from there (resume=auto)", signum)
    fix = f"resume with: {resume_command(run_dir)}"
    if requeued:  # the requeue failed: say so, and how to go on by hand
        fix = f"{requeued}; {fix}"
    return Interrupted(what, fix, signum)
