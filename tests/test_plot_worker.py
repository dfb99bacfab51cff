"""records/plot_worker.py: figures drawn in a worker process, waited for, never redrawn
from unchanged data, and a figure's failure reported as the figure's own exception."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dltrain.records import plot_worker, plotting

ROWS = [
    {"epoch": 0, "train/loss": 1.0, "val/loss": 1.1, "train/acc": 0.5, "val/acc": 0.4},
    {"epoch": 1, "train/loss": 0.5, "val/loss": 0.7, "train/acc": 0.8, "val/acc": 0.7},
]


@pytest.fixture(autouse=True)
def _no_leftovers():
    yield
    plot_worker.wait_all(raise_errors=False)


def test_figures_drawn_in_a_worker_and_unchanged_ones_skipped(tmp_path: Path) -> None:
    curves = tmp_path / "plots" / "learning_curves.png"
    assert plot_worker.submit(plotting.learning_curves, curves, ROWS, curves, "t")
    workers = plot_worker._pool._processes  # noqa: SLF001 - where it is drawn
    assert workers and os.getpid() not in workers
    assert plot_worker.wait_all() == [curves]
    assert curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn_at = curves.stat().st_mtime_ns

    # The same rows again: nothing to draw, the file is left as it is.
    assert not plot_worker.submit(plotting.learning_curves, curves, list(ROWS), curves, "t")
    assert plot_worker.wait_all() == []
    assert curves.stat().st_mtime_ns == drawn_at

    # One more epoch: drawn again.
    more = [*ROWS, {"epoch": 2, "train/loss": 0.4, "val/loss": 0.6}]
    assert plot_worker.submit(plotting.learning_curves, curves, more, curves, "t")
    assert plot_worker.wait_all() == [curves]

    # A deleted PNG is drawn again even from the same rows.
    curves.unlink()
    assert plot_worker.submit(plotting.learning_curves, curves, more, curves, "t")
    assert plot_worker.wait_all() == [curves] and curves.exists()


def test_a_failed_figure_raises_its_own_error_after_the_others(tmp_path: Path) -> None:
    bad, good = tmp_path / "bad.png", tmp_path / "cm.png"
    plot_worker.submit(plotting.confusion_matrix, bad, np.zeros(3), bad, None)  # not 2-D
    plot_worker.submit(plotting.confusion_matrix, good, np.eye(3, dtype=int), good, None)
    with pytest.raises(IndexError):
        plot_worker.wait_all()
    assert good.exists() and not bad.exists()

    # Not remembered as drawn: the same call is tried again, and may be told to stay quiet.
    assert plot_worker.submit(plotting.confusion_matrix, bad, np.zeros(3), bad, None)
    assert plot_worker.wait_all(raise_errors=False) == []


KILLED_RUN = """
import os, signal
from dltrain.records import plot_worker
plot_worker.start()
print(plot_worker._pool.submit(os.getpid).result(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_worker_exits_when_the_run_is_killed() -> None:
    # Like tests/test_resume.py's kill -9: whoever waits on the run's pipes gets EOF.
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, _ = proc.communicate(timeout=120)  # the worker held them open for ever before
    assert proc.returncode == -signal.SIGKILL
    worker = int(out.split()[0])
    assert worker != proc.pid
    status = Path(f"/proc/{worker}/status")

    def gone() -> bool:  # or exited, waiting to be reaped by whoever adopted it
        try:
            return "State:\tZ" in status.read_text()
        except FileNotFoundError:
            return True

    deadline = time.monotonic() + 120  # a hang check: the exit may still be under way
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gone()


def test_figures_only_built_write_nothing_but_still_fail_on_wrong_wiring(tmp_path: Path) -> None:
    # dl-smoke's figures (render=False): built in the worker, no PNG, nothing logged as
    # drawn; a class-name list that does not match the matrix fails as when rendered.
    cm, curves = tmp_path / "cm.png", tmp_path / "curves.png"
    assert plot_worker.submit(plotting.learning_curves, curves, ROWS, curves, "t", render=False)
    assert plot_worker.submit(
        plotting.confusion_matrix, cm, np.eye(3, dtype=int), cm, ["a", "b", "c"], render=False
    )
    assert plot_worker.wait_all() == [] and not list(tmp_path.iterdir())
    plot_worker.submit(plotting.confusion_matrix, cm, np.eye(3, dtype=int), cm, ["a", "b"],
                       render=False)  # fmt: skip
    with pytest.raises(ValueError, match="does not match the number of labels"):
        plot_worker.wait_all()
    # Rendering is back after the block: the same figure, drawn, in this process.
    with plotting.building_only():
        plotting.learning_curves(ROWS, curves)
    assert not curves.exists()
    plotting.learning_curves(ROWS, curves)
    assert curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
