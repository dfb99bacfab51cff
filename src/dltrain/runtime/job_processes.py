"""A multi-process (DDP) run as one job of a ``-m`` multirun or Optuna sweep.

Lightning starts ranks 1..N-1 by running the command line again
(``_SubprocessScriptLauncher`` with ``_hydra_subprocess_cmd``: ``sys.argv`` plus
``hydra.run.dir=<run dir>`` and ``hydra.output_subdir=null``). Inside ``-m`` that argv
still holds ``-m`` and every job's values, so each rank would run a sweep of its own.
Here the job starts its ranks itself, the way Lightning does for a single run, but from
the job's own overrides (``hydra.overrides``: its swept values, a trial's ``+trial.*``
keys) and with ``hydra.run.dir`` set to the job's directory: every child is a plain
single run of exactly this job. Rank 0 stays the job: it reports to the sweeper and
writes the run's records; the children know they are ranks > 0 (``LOCAL_RANK``), write
no records and follow rank 0's pruning decision (``dltrain.sweep.pruning``).

A job leaves the process as it found it: its children waited for, the process group
destroyed and the rendezvous variables Lightning set (``LOCAL_RANK``, ``MASTER_PORT``,
...) removed, so the next job starts processes of its own on a fresh port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

#: What Lightning's launcher writes into the environment of the process that starts ranks.
RENDEZVOUS = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
#: Seconds the children get to end after rank 0 ended the job, and rank 0 gets to end
#: the job after a child died; then they are killed (Lightning's observer kills at once).
GRACE_S = 30.0
POLL_S = 1.0

_current: Job | None = None


class Job:
    """The child processes of the job running now, ended with it."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.ended = threading.Event()

    def watch(self, procs: list[subprocess.Popen]) -> None:
        """Watch the children as Lightning's observer does: one that dies while rank 0
        is still in the job leaves rank 0 waiting in a collective. Unlike Lightning's,
        it gives rank 0 ``GRACE_S`` to end the job first (an error every rank raises
        ends every rank), so a failed trial does not end the sweep."""
        self.procs = list(procs)
        threading.Thread(target=self._observe, name="job-processes", daemon=True).start()

    def _observe(self) -> None:
        while not self.ended.wait(POLL_S):
            if any(p.poll() not in (None, 0) for p in self.procs):
                if not self.ended.wait(GRACE_S):  # rank 0 is stuck: end it all
                    for proc in self.procs:
                        proc.kill()
                    os.kill(os.getpid(), signal.SIGKILL)
                return

    def end(self) -> None:
        """Rank 0 left the job: its children end now too (killed after ``GRACE_S``,
        e.g. waiting in a collective for an error only rank 0 raised)."""
        self.ended.set()
        for proc in self.procs:
            try:
                proc.wait(GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def job(multirun: bool) -> Iterator[None]:
    """Run one job of a multirun (``multirun``) so that its DDP ranks belong to it;
    a no-op for a single run, whose ranks Lightning starts and ends."""
    global _current
    if not multirun:
        yield
        return
    saved = {k: os.environ.get(k) for k in RENDEZVOUS}
    _current = Job()
    try:
        yield
    finally:
        _current.end()
        _current = None
        _destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def adopt(trainer: Any) -> None:
    """Inside ``job``: the trainer's ranks are started as this job's own processes."""
    launcher = getattr(trainer.strategy, "launcher", None)
    if _current is None or type(launcher) is not _SubprocessScriptLauncher:
        return  # a single run, one process, or processes started by srun/torchrun
    trainer.strategy._launcher = JobLauncher(launcher, _current, child_command)


def child_command(local_rank: int) -> tuple[list[str], str]:
    """``(argv, cwd)`` of rank ``local_rank``: the program, the job's own overrides and
    its directory (what ``_hydra_subprocess_cmd`` adds to ``sys.argv``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    hydra = HydraConfig.get()
    # hydra.mode=MULTIRUN (in a multirun job's overrides) would make the child one too.
    keep = [o for o in hydra.overrides.hydra if not o.startswith("hydra.mode=")]
    overrides = [*keep, *hydra.overrides.task]
    run_dir = str(hydra.runtime.output_dir).replace('"', '\\"')
    return [
        *program(),
        f"--config-name={hydra.job.config_name}",
        *overrides,
        f'hydra.run.dir="{run_dir}"',
        f"hydra.job.name=train_ddp_process_{local_rank}",
        "hydra.output_subdir=null",
    ], get_original_cwd()


def program() -> list[str]:
    """This program, as Lightning finds it (``_hydra_subprocess_cmd``)."""
    from hydra.utils import to_absolute_path

    import __main__

    spec = getattr(__main__, "__spec__", None)
    if spec is None:
        return [sys.executable, to_absolute_path(sys.argv[0])]
    return [sys.executable, "-m", spec.name]


def _destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class JobLauncher(_SubprocessScriptLauncher):
    """Lightning's subprocess launcher with the job's command line for the children."""

    def __init__(
        self,
        base: Any,
        owner: Job,
        command: Callable[[int], tuple[list[str], str]],
    ) -> None:
        super().__init__(base.cluster_environment, base.num_processes, base.num_nodes)
        self.owner = owner
        self.command = command

    def launch(self, function: Callable, *args: Any, trainer: Any = None, **kwargs: Any) -> Any:
        from lightning.fabric.utilities.distributed import _set_num_threads_if_needed

        env = self.cluster_environment
        env.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        if not env.creates_processes_externally:
            self._call_children_scripts()
            self.owner.watch(self.procs)
        _set_num_threads_if_needed(num_processes=self.num_processes)
        return function(*args, **kwargs)

    def _call_children_scripts(self) -> None:
        self._check_can_spawn_children()
        env = self.cluster_environment
        os.environ["MASTER_ADDR"] = env.main_address
        os.environ["MASTER_PORT"] = str(env.main_port)
        os.environ["NODE_RANK"] = str(env.node_rank())
        os.environ["LOCAL_RANK"] = str(env.local_rank())
        os.environ["WORLD_SIZE"] = str(self.num_processes * self.num_nodes)
        for local_rank in range(1, self.num_processes):
            argv, cwd = self.command(local_rank)
            child_env = {**os.environ, "LOCAL_RANK": str(local_rank)}
            self.procs.append(subprocess.Popen(argv, env=child_env, cwd=cwd))
