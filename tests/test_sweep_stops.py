"""Sweeps that stop instead of wasting their budget, and what reaches the terminal."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli

# Debug-sized trials of the digits study: a few batches, no test pass.
SMALL = ["trainer.max_epochs=1", "trainer.limit_train_batches=3", "test=false"]


def sweep_dir(base: Path, study: str) -> Path:
    return base / "outputs" / "train" / "sweeps" / study


def summary_of(base: Path, study: str) -> dict:
    return json.loads((sweep_dir(base, study) / "sweep_summary.json").read_text())


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_a_misspelled_metric_stops_the_sweep_before_its_first_trial(tmp_path: Path) -> None:
    """Before: all 6 trials trained to their end, each recorded as failed, exit 0."""
    out = run_cli(
        [
            "-m",
            "hparams_search=digits_optuna",
            "optimized_metric=val/no_such_metric",
            "hydra.sweeper.n_trials=6",
        ],
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert last_line(out.stderr) == (
        "error: optimized_metric 'val/no_such_metric' is not a metric dl-train logs — use one "
        "of: train/loss, train/acc, val/loss, val/acc, val/acc_best, test/loss, test/acc, "
        "test/auroc, test/f1_macro, lr-<optimizer>"
    )
    assert not list(sweep_dir(tmp_path, "digits_optuna").glob("trial_*"))
    # A test metric with test=false cannot be logged either.
    out = run_cli(
        ["-m", "hparams_search=digits_optuna", "optimized_metric=test/acc", "test=false"],
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert last_line(out.stderr) == (
        "error: optimized_metric 'test/acc' is logged only when the run tests (test=false) — "
        "set test=true or optimize a val/ metric"
    )


def test_an_error_every_trial_shares_stops_after_the_first_trial(tmp_path: Path) -> None:
    """Missing data is the same for any sampled values (the config without them fails
    the same way once its data is read): one trial, its error line, exit 2; that trial
    does not count, so the fixed command gets its whole n_trials. ``study_name: null``
    names the study, and its directory, after the hparams_search option (before:
    ``sweeps/None``)."""
    nowhere = tmp_path / "nowhere"
    out = run_cli(
        [
            "-m",
            "hparams_search=digits_optuna",
            "hydra.sweeper.study_name=null",
            "hydra.sweeper.n_trials=6",
            "data=mnist",
            f"paths.data_dir={nowhere}",
            *SMALL,
        ],
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert last_line(out.stderr) == (
        "error: MNIST not found: expected train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        f"t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte in {nowhere}/MNIST/raw — set "
        f"paths.data_dir to the folder that holds MNIST's files (now {nowhere}), or add "
        "data.download=true when online"
    )
    assert (
        "sweep stopped: trial 0 failed for a reason that does not depend on its sampled "
        "values, so every trial would fail the same way (trials that failed for it do not "
        "count toward n_trials)"
    ) in out.stdout
    summary = summary_of(tmp_path, "digits_optuna")
    assert summary["study_name"] == "digits_optuna"
    trials = summary["trials"]
    assert [(t["number"], t["state"]) for t in trials] == [(0, "FAIL")]
    assert trials[0]["reason"].startswith("MNIST not found")
    assert trials[0]["run_dir"] == str(sweep_dir(tmp_path, "digits_optuna") / "trial_0")
    assert [p.name for p in sweep_dir(tmp_path, "").iterdir()] == ["digits_optuna"]


def test_a_sweep_where_no_trial_completed_exits_1(tmp_path: Path) -> None:
    """Every trial's loss turns NaN (a runtime failure that depends on the values, so the
    sweep goes on): the leaderboard, then one error line, exit 1. Library warnings
    ("There are no complete trials", matplotlib's legend) stay in sweep.log."""
    args = [
        "-m",
        "hparams_search=digits_optuna",
        "hydra.sweeper.study_name=allfail",
        "optimizer.lr=1e30",
        *SMALL,
    ]
    out = run_cli([*args, "hydra.sweeper.n_trials=2"], cwd=tmp_path)
    assert out.returncode == 1, out.stderr[-2000:]
    d = "outputs/train/sweeps/allfail"
    assert last_line(out.stderr) == (
        "error: no trial of study 'allfail' completed (2 fail) — see each trial's reason "
        f"above or in {d}/sweep_summary.json"
    )
    assert "2 trials (2 fail); best trial: None" in out.stdout
    noise = ("There are no complete trials", "No artists with labels", "A new study created")
    for text in noise[:2]:
        assert text not in out.stderr + out.stdout
    log = (sweep_dir(tmp_path, "allfail") / "sweep.log").read_text()
    assert noise[0] in log and noise[2] in log

    # hydra-optuna-sweeper's max_failure_rate: 0.0 stops at the first failed trial (the
    # error's own exit code: 1 for a runtime failure).
    out = run_cli(
        [*args, "hydra.sweeper.n_trials=4", "hydra.sweeper.max_failure_rate=0.0"], cwd=tmp_path
    )
    assert out.returncode == 1, out.stderr[-2000:]
    assert last_line(out.stderr) == (
        "error: val/loss became nan at epoch 0 — lower optimizer.lr or narrow its search range"
    )
    assert (
        "sweep stopped: more than 0 of its trials failed (hydra.sweeper.max_failure_rate), "
        "the last one trial 2"
    ) in out.stdout
    assert len(summary_of(tmp_path, "allfail")["trials"]) == 3
