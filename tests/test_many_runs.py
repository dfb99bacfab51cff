"""Runs started at once: each gets its own run directory, even in the same second."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

from conftest import BIN
from dltrain.config import run_dirs
from dltrain.module import logged

TINY = ["debug=fast", "task_name=train", "callbacks.plots=null"]


def test_four_runs_started_at_once_get_four_directories(tmp_path: Path) -> None:
    """Before: the same `runs/<second>/` for all four; one died with `error: ValueError:
    dict contains fields not in fieldnames: 'train/acc', 'train/loss' — this looks like
    a bug`. Now: four folders, four completed records, no error line."""
    procs = [
        subprocess.Popen(
            [str(BIN / "dl-train"), *TINY, f"seed={i}"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert not [line for err in errors for line in err.splitlines() if "error:" in line]
    runs = sorted((tmp_path / "outputs" / "train" / "runs").iterdir())
    assert len(runs) == 4, runs
    records = [json.loads((run / "results.json").read_text()) for run in runs]
    assert [r["status"] for r in records] == ["completed"] * 4
    assert sorted(r["seed"] for r in records) == [0, 1, 2, 3]  # one run per folder
    for run in runs:  # readable and sorted by time: <YYYY-MM-DD_HH-MM-SS>[_NN]
        datetime.strptime(run.name[:19], run_dirs.STAMP)
    # The metric names a sweep accepts before its first trial are what a run logs.
    names = set(records[0]["metrics"])
    default = {"val": [], "test": ["auroc", "f1_macro"]}  # configs/train.yaml's metrics
    assert names - {"lr-Adam"} == set(logged.names(default)) and "lr-Adam" in names


def test_a_taken_name_gets_the_next_suffix(tmp_path: Path, monkeypatch) -> None:
    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):  # noqa: ANN001, ANN206
            return datetime(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(run_dirs, "datetime", Frozen)
    claimed = [run_dirs.claim(str(tmp_path / "runs")) for _ in range(3)]
    assert [Path(c).name for c in claimed] == [
        "2026-01-02_03-04-05",
        "2026-01-02_03-04-05_01",
        "2026-01-02_03-04-05_02",
    ]
    assert sorted(claimed) == claimed and all(Path(c).is_dir() for c in claimed)
