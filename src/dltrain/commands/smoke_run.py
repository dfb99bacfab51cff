"""One ``dl-train`` command line run inside this process, as if it were its own process.

Why in-process: a smoke run's one batch takes well under a second, while a new Python
process pays several seconds to import torch, Lightning and friends; ``dl-smoke`` pays
that once for all its experiments. The price is state that a run leaves behind in the
process, which a fresh process would not have inherited. ``isolated()`` takes a snapshot
of what a run can change and puts it back afterwards:

- Hydra's global instance and job config, the working directory, ``sys.argv``,
  ``sys.path`` and the environment (``PL_GLOBAL_SEED``, ``HF_HUB_OFFLINE``, cuBLAS
  settings and whatever else a run sets);
- torch's process-wide settings (matmul precision, deterministic algorithms, cuDNN
  flags, threads, default dtype, grad mode, anomaly detection) and the random states of
  torch, numpy and ``random``;
- logging (every logger's level, handlers, propagation; the handlers a run added are
  closed), warnings filters and signal handlers;
- the garbage collector's on/off state, followed by a full collection.

The run itself is the real CLI (``cli.train_main``), so its errors, exit codes and run
directory are exactly a user's.

``run_all`` spreads the runs over worker processes forked from the warm process (the
standard library's ``ProcessPoolExecutor``): each inherits the imports, so each run
still costs no start-up, and each worker runs its share of the runs one after another
with the isolation above.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import multiprocessing
import os
import random
import signal
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")


@dataclass
class Finished:
    """The exit code and the captured terminal output of one in-process run."""

    code: int
    stdout: str
    stderr: str


def run_cli(main: Callable[[], None], argv: list[str]) -> Finished:
    """``main()`` (a console entry point) with ``sys.argv = argv``, its output captured
    and its exit code caught; the process's state put back afterwards."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with isolated(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        sys.argv = list(argv)
        try:
            main()
        except SystemExit as ex:
            code = ex.code if isinstance(ex.code, int) else (0 if ex.code is None else 1)
            if ex.code is not None and not isinstance(ex.code, int):
                print(ex.code, file=sys.stderr)
    if code == 130:  # the user pressed Ctrl-C during the run: stop the smoke run too
        raise KeyboardInterrupt
    return Finished(code, out.getvalue(), err.getvalue())


def warm_up() -> None:
    """Import what every ``dl-train`` run imports, once, before the first snapshot: the
    libraries' import-time settings (their loggers) are then part of the state every run
    starts from, as in a fresh ``dl-train`` process. Then freeze what the imports made
    (``runtime/startup.py``), as ``dl-train`` does: the full collection after each run
    (``isolated``) and the workers forked from here no longer walk it."""
    import dltrain.commands.train  # noqa: F401 - torch, Lightning, the recipe
    from dltrain.runtime import startup

    startup.freeze_imports()


def run_all(
    run: Callable[..., T],
    jobs: Sequence[tuple[Any, ...]],
    workers: int,
    said: Callable[[T], None],
    died: Callable[[tuple[Any, ...], BaseException], T],
) -> list[T]:
    """``run(*job)`` for every job, in ``workers`` forked processes (one: here, in
    turn); ``said`` hears each result as it comes, the list keeps the jobs' order.

    A worker that dies (a crash in native code, the out-of-memory killer) takes the
    pool down with it, and the pool cannot tell which job killed it: every job it left
    unfinished runs again alone in a fresh worker, and ``died(job, error)`` stands for
    the result of one that kills that worker too."""
    count = min(workers, len(jobs))
    if count <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        results = []
        for job in jobs:
            results.append(run(*job))
            said(results[-1])
        return results
    found: list[Any] = [None] * len(jobs)
    threads = max(1, torch.get_num_threads() // count)  # the cores shared, not oversubscribed
    for i, _ in _in_pool(run, jobs, range(len(jobs)), count, threads, found, said):
        for _, ex in _in_pool(run, jobs, [i], 1, threads, found, said):
            found[i] = died(jobs[i], ex)
            said(found[i])
    return found


def _in_pool(
    run: Callable[..., Any],
    jobs: Sequence[tuple[Any, ...]],
    indices: Sequence[int],
    count: int,
    threads: int,
    found: list[Any],
    said: Callable[[Any], None],
) -> list[tuple[int, BaseException]]:
    """``jobs[i]`` for each of ``indices`` in ``count`` forked workers, the results put in
    ``found``; the indices (and errors) of the jobs a dead worker left unfinished."""
    pool = ProcessPoolExecutor(
        count, mp_context=multiprocessing.get_context("fork"), initializer=_start_worker,
        initargs=(threads,),
    )  # fmt: skip
    broken: list[tuple[int, BaseException]] = []
    try:
        futures = {pool.submit(run, *jobs[i]): i for i in indices}
        for future in as_completed(futures):
            i = futures[future]
            try:
                found[i] = future.result()
            except BrokenProcessPool as ex:
                broken.append((i, ex))
                continue
            said(found[i])
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return sorted(broken, key=lambda b: b[0])


def _start_worker(threads: int) -> None:
    """In a forked worker: its share of the cores' threads (a run's ``threads=`` still
    sets its own, and ``isolated`` puts this back after it)."""
    torch.set_num_threads(threads)


@contextlib.contextmanager
def isolated(collect: bool = True) -> Iterator[None]:
    """Put back everything listed in the module docstring when the block ends; then
    (``collect``) free the run's objects, a fit's cycles included, before the next run."""
    saved = _Process.take()
    try:
        yield
    finally:
        saved.restore()
        if collect:
            gc.collect()


@dataclass
class _Process:
    env: dict[str, str]
    cwd: str
    argv: list[str]
    path: list[str]
    torch_state: dict[str, Any]
    rng: tuple[Any, Any, Any]
    logging_state: dict[str, tuple[Any, ...]]
    logging_disable: int
    warning_filters: list[Any]
    signals: dict[signal.Signals, Any]
    gc_enabled: bool

    @classmethod
    def take(cls) -> _Process:
        return cls(
            env=dict(os.environ),
            cwd=os.getcwd(),
            argv=list(sys.argv),
            path=list(sys.path),
            torch_state=_torch_state(),
            rng=(torch.random.get_rng_state(), np.random.get_state(), random.getstate()),
            logging_state=_logging_state(),
            logging_disable=logging.root.manager.disable,
            warning_filters=list(warnings.filters),
            signals=_signal_handlers(),
            gc_enabled=gc.isenabled(),
        )

    def restore(self) -> None:
        _clear_hydra()
        os.chdir(self.cwd)
        sys.argv[:] = self.argv
        sys.path[:] = self.path
        os.environ.clear()
        os.environ.update(self.env)
        _set_torch_state(self.torch_state)
        torch.random.set_rng_state(self.rng[0])
        np.random.set_state(self.rng[1])
        random.setstate(self.rng[2])
        _restore_logging(self.logging_state)
        logging.disable(self.logging_disable)
        warnings.filters[:] = self.warning_filters
        warnings._filters_mutated()  # type: ignore[attr-defined]  # drop the cached decisions
        for sig, handler in self.signals.items():
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
        (gc.enable if self.gc_enabled else gc.disable)()


def _clear_hydra() -> None:
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None  # type: ignore[assignment]


def _torch_state() -> dict[str, Any]:
    return {
        "matmul_precision": torch.get_float32_matmul_precision(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "threads": torch.get_num_threads(),
        "dtype": torch.get_default_dtype(),
        "grad": torch.is_grad_enabled(),
        "anomaly": torch.is_anomaly_enabled(),
    }


def _set_torch_state(state: dict[str, Any]) -> None:
    torch.set_float32_matmul_precision(state["matmul_precision"])
    torch.use_deterministic_algorithms(
        state["deterministic"], warn_only=state["deterministic_warn_only"]
    )
    torch.backends.cudnn.benchmark = state["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = state["cudnn_deterministic"]
    if torch.get_num_threads() != state["threads"]:
        torch.set_num_threads(state["threads"])
    torch.set_default_dtype(state["dtype"])
    torch.set_grad_enabled(state["grad"])
    torch.set_anomaly_enabled(state["anomaly"])


def _loggers() -> dict[str, logging.Logger]:
    found = {
        name: lg
        for name, lg in logging.Logger.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    return {"": logging.getLogger(), **found}


def _logging_state() -> dict[str, tuple[Any, ...]]:
    return {
        name: (lg.level, list(lg.handlers), lg.propagate, lg.disabled, list(lg.filters))
        for name, lg in _loggers().items()
    }


def _restore_logging(saved: dict[str, tuple[Any, ...]]) -> None:
    """Each logger as it was; a logger first made during the run as a new logger is (the
    libraries a run uses are imported before the first snapshot: ``warm_up``)."""
    kept = {id(h) for state in saved.values() for h in state[1]}
    for name, lg in _loggers().items():
        for handler in lg.handlers:
            if id(handler) not in kept:
                handler.close()  # the run's log file, or a stream it captured
        level, handlers, propagate, disabled, filters = saved.get(
            name, (logging.NOTSET, [], True, False, [])
        )
        lg.level, lg.propagate, lg.disabled = level, propagate, disabled
        lg.handlers[:], lg.filters[:] = handlers, filters
    logging.Logger.manager._clear_cache()  # type: ignore[attr-defined]  # levels changed


def _signal_handlers() -> dict[signal.Signals, Any]:
    out = {}
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            out[signal.Signals(sig)] = signal.getsignal(sig)
        except (ValueError, OSError):  # a real-time signal Python does not name
            continue
    return out
