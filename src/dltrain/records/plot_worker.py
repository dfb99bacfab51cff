"""Figures drawn off the run's critical path: in worker processes the run waits for at
its end, and never twice from the same data.

Why: drawing a run's four PNGs takes 1-3 s of CPU on the 2-core development machine
(the first figure of a process also loads fonts), all of it between the last training
step and the exit. Two worker processes (``concurrent.futures.ProcessPoolExecutor``, the
standard library's pool: it feeds the jobs from a thread of its own and hands back each
figure's exception) start when the fit starts: the learning curves are drawn while the
run tests, the test's two figures (ROC curves and confusion matrix) side by side after
it; ``wait_all()`` at the end of the run collects every figure, so a finished run has
all of its PNGs, and a figure that failed fails the run as before. Processes, not
threads: drawing is Python-heavy and would hold the GIL the training loop needs.

Forked where the platform forks (Linux), as PyTorch's own DataLoader workers are: the
child starts with matplotlib already imported (torchmetrics imports it) and touches
nothing but numpy and matplotlib, so torch's thread pools, which a fork does not carry
over, are never used in it. A spawned worker would import the plotting stack and the
run's ``__main__`` again: a second or more of CPU that, on a 2-core machine, the fit pays.

Skipped: a figure whose function and arguments are the ones its PNG was last drawn from
in this process (a resumed run's curves at its start and end when it had no epoch left,
the curves again on an exception after the fit).
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_pool: ProcessPoolExecutor | None = None
_pending: list[tuple[Path, Future]] = []
_drawn: dict[Path, str] = {}  # PNG path -> digest of what it was drawn from


def _exit_with_parent(parent: int) -> None:
    """In the worker: exit once the run's process is gone. A run killed with SIGKILL
    cannot shut its pool down, and a forked worker never sees its job queue close (it
    holds the queue's other end itself): without this it would live on, holding the
    run's stdout and stderr open for whoever waits on them."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _forget_trackers() -> None:
    """In a forked worker: drop W&B's import hooks, which the fork copied. They report
    each newly imported library (sklearn for the ROC curves) to the parent's run, and
    W&B refuses that from a forked process (``ForkedError``), failing the figure. The
    worker is not the run: it has nothing to report."""
    import sys

    hooks = sys.modules.get("wandb.sdk.lib.import_hooks")
    if hooks is not None:
        hooks.unregister_all_post_import_hooks()


def _start_worker(parent: int) -> None:
    """The worker's initializer (see ``_exit_with_parent`` and ``_forget_trackers``)."""
    _exit_with_parent(parent)
    _forget_trackers()


def _warm() -> None:
    """Run in the worker at its start: the plotting stack imported (a spawned worker
    imports it here, while the fit runs)."""
    from dltrain.records import plotting  # noqa: F401


def start() -> None:
    """Start the worker (if not running) and let it import the plotting stack now."""
    global _pool
    if _pool is None:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        _pool = ProcessPoolExecutor(
            max_workers=2,  # the confusion matrix and the ROC curves at once
            mp_context=context,
            initializer=_start_worker,
            initargs=(os.getpid(),),
        )
        _pool.submit(_warm)


def submit(draw: Callable[..., Path], path: Path, *args: Any, render: bool = True) -> bool:
    """Draw ``draw(*args)`` (a function of records/plotting.py that writes ``path``) in the
    worker; ``render=False``: build the figure only (``plotting.building_only``), no PNG.
    ``False``: skipped, ``path`` was drawn from the same arguments already."""
    if render:
        digest = hashlib.sha1(pickle.dumps((draw.__qualname__, path, args))).hexdigest()
        if _drawn.get(path) == digest and path.exists():
            return False
        _drawn[path] = digest
    start()
    assert _pool is not None
    job = _pool.submit(draw, *args) if render else _pool.submit(_build, draw, *args)
    _pending.append((path, job))
    return True


def _build(draw: Callable[..., Path], *args: Any) -> None:
    """In the worker: ``draw(*args)`` with its figure built, not rendered nor written."""
    from dltrain.records import plotting

    with plotting.building_only():
        draw(*args)


def wait_all(raise_errors: bool = True) -> list[Path]:
    """Wait for every figure submitted; the paths drawn. A figure's exception is raised
    (``raise_errors``) or logged (a run that already failed keeps its own error). The
    worker is shut down: the next ``submit`` starts a new one."""
    global _pool
    drawn: list[Path] = []
    first_error: BaseException | None = None
    while _pending:
        path, future = _pending.pop(0)
        try:
            future.result()
        except Exception as ex:  # noqa: BLE001 - reported below, with the figure's name
            _drawn.pop(path, None)
            log.warning("%s not drawn: %s: %s", path.name, type(ex).__name__, ex)
            first_error = first_error or ex
        else:
            if path.exists():  # (a figure only built writes nothing)
                drawn.append(path)
                log.info("wrote %s", path)
    if _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None
    if first_error is not None and raise_errors:
        raise first_error
    return drawn


# A run driven by Lightning directly (not dl-train) still gets its PNGs before exit.
atexit.register(wait_all, raise_errors=False)
