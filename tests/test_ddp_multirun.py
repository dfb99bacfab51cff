"""``-m`` with ``trainer=ddp_cpu``: each job or trial is one two-process run whose rank 0
owns it (one directory, one ``results.json``, the only one that reports to the study),
and rank 0's pruning decision stops every rank at the same point.

Real CLI processes, as a user runs them; the runs are cut to a few batches.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

SHORT = ["trainer=ddp_cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=3",
         "logger=none", "callbacks.plots=null"]  # fmt: skip
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def test_a_ddp_multirun_runs_each_job_as_one_two_process_run(tmp_path: Path) -> None:
    multi = tmp_path / "multi"
    out = run_cli(["-m", "data=digits", "optimizer.lr=0.01,0.001", *SHORT,
                   f"hydra.sweep.dir={multi}"], cwd=tmp_path, env=ONE_THREAD)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in multi.iterdir() if p.is_dir()) == ["0", "1"]
    assert not (tmp_path / "outputs").exists()  # no rank ran a run (or sweep) of its own
    for job, lr in (("0", "0.01"), ("1", "0.001")):
        results = json.loads((multi / job / "results.json").read_text())
        assert results["status"] == "completed" and results["world_size"] == 2, results
        assert results["steps"] == 3
        overrides = (multi / job / ".hydra" / "overrides.yaml").read_text()
        assert f"- optimizer.lr={lr}\n" in overrides
    assert out.stdout.count("results: ") == 2  # one summary per job, from its rank 0


# trial 0 learns (lr 0.05), trial 1 does not (lr 1e-6): the median pruner, active from
# the second trial at epoch 0, prunes trial 1 (TPE seed 42 draws them in this order).
SWEEP = ["-m", "hparams_search=digits_optuna", "trainer=ddp_cpu", "trainer.max_epochs=2",
         "trainer.limit_train_batches=3", "logger=none", "model.dropout=0", "model.hidden=[64]",
         "data.batch_size=64", "optimizer.lr=choice(0.000001,0.05)",
         "hydra.sweeper.pruner.n_startup_trials=1",
         "hydra.sweeper.pruner.n_warmup_steps=0"]  # fmt: skip


def _sweep(tmp_path: Path, n_trials: int) -> tuple[dict, str]:
    sweep_dir = tmp_path / "sweep"
    out = run_cli([*SWEEP, f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweep.dir={sweep_dir}"],
                  cwd=tmp_path, env=ONE_THREAD)  # fmt: skip
    assert out.returncode == 0, out.stderr
    # No rank ran a sweep or run of its own (the sweeper's composition claims empty
    # timestamped folders under outputs/; no files are written there).
    assert not [p for p in tmp_path.glob("outputs/**/*") if p.is_file()]
    trials = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert trials == [f"trial_{i}" for i in range(n_trials)]  # no rank asked trials of its own
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert out.stdout.count("best trial: ") == 1, out.stdout  # one leaderboard
    return summary, out.stdout


def _status(tmp_path: Path, trial: int) -> dict:
    return json.loads((tmp_path / "sweep" / f"trial_{trial}" / "results.json").read_text())


def test_a_ddp_sweep_prunes_on_rank_zero_and_stops_every_rank(tmp_path: Path) -> None:
    summary, stdout = _sweep(tmp_path, n_trials=2)
    assert summary["counts"] == {"COMPLETE": 1, "PRUNED": 1}, summary
    assert "trial 1: pruned (Trial was pruned at epoch 0.)" in stdout
    # Rank 1 got the decision in the same hook: it ended with rank 0 (exit 0 above, no
    # hang); rank 0 wrote the trial's one record.
    assert _status(tmp_path, 0)["world_size"] == 2
    assert _status(tmp_path, 1)["status"] == "pruned"


@pytest.mark.slow
def test_a_four_trial_ddp_sweep_completes_with_pruning(tmp_path: Path) -> None:
    summary, _ = _sweep(tmp_path, n_trials=4)
    assert sum(summary["counts"].values()) == 4 and summary["counts"].get("PRUNED"), summary


def test_a_jobs_ranks_run_the_job_itself_not_the_multirun_line(tmp_path: Path) -> None:
    # Lightning's own command would be sys.argv: "-m" and every job's values.
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from dltrain.runtime.job_processes import child_command
    from test_compose import CONFIGS

    task = ["data=digits", "optimizer.lr=0.001", "+trial.number=3"]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[*task, "hydra.mode=MULTIRUN"], return_hydra_config=True)
    assert "hydra.mode=MULTIRUN" in cfg.hydra.overrides.hydra  # as in a -m job
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path / "sweep" / "1")
    HydraConfig.instance().set_config(cfg)
    try:
        argv, _ = child_command(1)
    finally:
        HydraConfig.instance().cfg = None
    tail = argv[argv.index("--config-name=train") + 1 :]
    assert tail == [*task, f'hydra.run.dir="{tmp_path}/sweep/1"',
                    "hydra.job.name=train_ddp_process_1", "hydra.output_subdir=null"]  # fmt: skip


def test_a_job_ends_with_its_children_and_leaves_no_rendezvous_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A child waiting in a collective for an error only rank 0 raised is killed once the
    # grace period is over; the next job finds no LOCAL_RANK (it would start no ranks).
    import os
    import subprocess
    import sys

    from dltrain.runtime import job_processes as jp

    monkeypatch.setattr(jp, "GRACE_S", 0.2)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with jp.job(multirun=True):
        os.environ["LOCAL_RANK"] = "0"  # as Lightning's launcher sets it
        stuck = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        assert jp._current is not None
        jp._current.procs = [stuck]
    assert stuck.poll() is not None and "LOCAL_RANK" not in os.environ
