"""Runs started at once: each gets its own run directory, even in the same second."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

from conftest import BIN
from dltrain.module import logged
from dltrain.runtime import run_dirs

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


def test_a_rejected_command_aimed_at_a_finished_run_leaves_its_record(tmp_path: Path) -> None:
    """Before: Hydra rewrote the run's ``.hydra/config.yaml``, ``hydra.yaml`` and
    ``overrides.yaml`` with the rejected command before the checks ran, so the record of
    the finished run described a command that never ran. Now: byte-identical."""
    run = tmp_path / "run"
    base = [*TINY, "model.hidden=[8]", f"hydra.run.dir={run}"]
    first = subprocess.run(
        [str(BIN / "dl-train"), *base], cwd=tmp_path, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    assert (run / "checkpoints" / "last.ckpt").is_file()

    def record() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((run / ".hydra").iterdir())}

    before = record()
    assert set(before) == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    assert b"output_subdir: .hydra" in before["hydra.yaml"]
    rejected = {  # a key the net does not take; resume=auto with another net; a late check
        "+model.heads=0": "error: unknown key 'model.heads' for dltrain.nets.mlp.MLP",
        "model.hidden=[16]": "belongs to a run with another model or data (differing "
        "keys: model.hidden)",
        "task=regression": "error: task=regression needs tabular data",  # once data is built
    }
    for override, line in rejected.items():
        out = subprocess.run(
            [str(BIN / "dl-train"), *base, override], cwd=tmp_path, capture_output=True, text=True
        )
        assert out.returncode == 2, out.stderr
        assert line in out.stderr and out.stderr.count("error:") == 1, out.stderr
        assert record() == before, override
    assert (run / "results.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()

    # A run killed while its data loaded holds only its record and log: a rejected command
    # aimed at it must not remove it (a new run's empty directory is removed: other tests).
    killed = tmp_path / "killed"
    shutil.copytree(run / ".hydra", killed / ".hydra")
    (killed / "train.log").write_text("loading data\n")
    out = subprocess.run(
        [str(BIN / "dl-train"), *base[:-1], f"hydra.run.dir={killed}", "+model.heads=0"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert {p.name: p.read_bytes() for p in sorted((killed / ".hydra").iterdir())} == before
    assert (killed / "train.log").read_text() == "loading data\n"
