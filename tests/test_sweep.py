"""Optuna sweeps: the search space, and `dl-train -m hparams_search=...` run as users run it."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import optuna
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus

from conftest import BIN, run_cli
from dltrain.errors import ConfigError
from dltrain.sweep import loop
from dltrain.sweep.space import format_value, parse_space, to_overrides, to_plain

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sweep_dir(base: Path, study: str) -> Path:
    return base / "outputs" / "train" / "sweeps" / study


def summary_of(base: Path, study: str) -> dict:
    return json.loads((sweep_dir(base, study) / "sweep_summary.json").read_text())


# ---- search space ------------------------------------------------------------------------


def test_yaml_and_sweep_string_spaces_become_optuna_distributions() -> None:
    dims = parse_space(
        {
            "optimizer.lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
            "model.dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
            "data.batch_size": {"type": "int", "low": 32, "high": 128, "step": 32},
            "model.hidden": {"type": "categorical", "choices": [[64], [256, 128]]},
            "model.activation": "choice(relu,gelu)",
            "trainer.max_epochs": "range(1,4)",
            "model.dropout2": "tag(log, interval(0.01, 1.0))",
        }
    )
    d = {x.key: x.distribution() for x in dims}
    assert d["optimizer.lr"] == optuna.distributions.FloatDistribution(1e-4, 0.1, log=True)
    assert d["model.dropout"] == optuna.distributions.FloatDistribution(0.0, 0.5, step=0.1)
    assert d["data.batch_size"] == optuna.distributions.IntDistribution(32, 128, step=32)
    assert d["model.hidden"].choices == ("[64]", "[256,128]")
    assert d["model.activation"].choices == ("relu", "gelu")
    assert d["trainer.max_epochs"] == optuna.distributions.IntDistribution(1, 3)
    assert d["model.dropout2"] == optuna.distributions.FloatDistribution(0.01, 1.0, log=True)
    assert [x.grid() for x in dims if x.key == "model.dropout"] == [[0.0, 0.1, 0.2, 0.3, 0.4, 0.5]]


def test_sampled_values_are_valid_overrides_hydra_reads_back() -> None:
    params = {"model.hidden": "[256,128]", "optimizer.lr": 1e-05, "tag": "a b", "flag": "true"}
    overrides = to_overrides(params)
    assert overrides == ["model.hidden=[256,128]", "optimizer.lr=1e-05", "tag='a b'", "flag='true'"]
    parsed = OverridesParser.create().parse_overrides(overrides)
    assert [o.value() for o in parsed] == [[256, 128], 1e-05, "a b", "true"]
    assert to_plain("[256,128]") == [256, 128] and format_value(None) == "null"


@pytest.mark.parametrize(
    "spec,message",
    [
        (
            {"type": "floot", "low": 0, "high": 1},
            "search space 'k': unknown type 'floot' — use type: float|int|categorical "
            "with fields choices, high, log, low, step, type",
        ),
        (
            {"type": "float", "low": 1},
            "search space 'k': a float needs low and high — write {type: float, low: .., high: ..}",
        ),
        (
            {"type": "float", "low": 0, "high": 1, "log": True},
            "search space 'k': invalid range low=0.0, high=1.0, step=None, log=True — "
            "low must not exceed high; log needs low > 0 and no step",
        ),
        (
            {"type": "categorical"},
            "search space 'k': a categorical needs choices — "
            "list them: {type: categorical, choices: [a, b]}",
        ),
    ],
)
def test_space_mistakes_are_config_errors(spec: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_space({"k": spec})
    assert str(info.value) == message


def test_non_finite_value_is_recorded_as_failed_with_reason() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    ret = JobReturn(status=JobStatus.COMPLETED, _return_value=float("nan"))
    loop.record(study, trial, ret)
    frozen = study.trials[0]
    assert frozen.state == optuna.trial.TrialState.FAIL
    assert frozen.user_attrs["fail_reason"] == "the optimized metric is nan, not a finite number"


# ---- sweeps as processes -----------------------------------------------------------------


def test_digits_sweep_prunes_reports_and_continues(tmp_path: Path) -> None:
    out = run_cli(["-m", "hparams_search=digits_optuna"], cwd=tmp_path, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "study digits_optuna: val/acc_best" in out.stdout  # the leaderboard
    assert "10 trials (" in out.stdout and "best trial:" in out.stdout
    summary = summary_of(tmp_path, "digits_optuna")
    trials = summary["trials"]
    assert [t["number"] for t in trials] == list(range(10))
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert pruned, [t["state"] for t in trials]
    for t in pruned:
        results = json.loads((Path(t["run_dir"]) / "results.json").read_text())
        assert results["status"] == "pruned"
        assert results["reason"].startswith("Trial was pruned at epoch")
        assert t["epochs"] < 4 or results["reason"].endswith("epoch 3.")
    best = max((t for t in trials if t["state"] == "COMPLETE"), key=lambda t: t["value"])
    assert summary["best_trial"] == best["number"]
    best_results = json.loads((Path(best["run_dir"]) / "results.json").read_text())
    assert best_results["metrics"]["val/acc_best"] == best["value"]

    d = sweep_dir(tmp_path, "digits_optuna")
    saved = yaml.safe_load((d / "best_params.yaml").read_text())
    assert saved["best_params"] == best["params"] and saved["best_value"] == best["value"]
    command = (d / "best_overrides.txt").read_text().strip()
    assert command.startswith("dl-train hparams_search=digits_optuna optimizer.lr=")
    assert "trial." not in command
    for name in ("optimization_history", "param_importances", "intermediate_values"):
        assert (d / f"{name}.png").read_bytes()[:8] == PNG_MAGIC

    # The same command with a larger total continues the study.
    out = run_cli(["-m", "hparams_search=digits_optuna", "hydra.sweeper.n_trials=12"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "10 of 12 trials done" in out.stdout
    again = summary_of(tmp_path, "digits_optuna")["trials"]
    assert [t["number"] for t in again] == list(range(12))
    assert [(t["state"], t["value"]) for t in again[:10]] == [
        (t["state"], t["value"]) for t in trials
    ]


def test_two_processes_share_one_study_without_duplicates(tmp_path: Path) -> None:
    args = [
        str(BIN / "dl-train"),
        "-m",
        "hparams_search=digits_optuna",
        "hydra.sweeper.study_name=shared",
        "hydra.sweeper.n_trials=5",
        "trainer.max_epochs=2",
        "test=false",
    ]
    procs = [
        subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    storage = sweep_dir(tmp_path, "shared") / "study.journal"
    study = optuna.load_study(
        study_name="shared",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(storage))
        ),
    )
    ran = [t for t in study.trials if t.state != optuna.trial.TrialState.WAITING]
    assert sorted(t.number for t in ran) == list(range(5))
    assert all(t.state.is_finished() for t in ran)
    run_dirs = {t.user_attrs["run_dir"] for t in ran}
    assert len(run_dirs) == 5


FAILING = """\
# @package _global_
defaults:
  - override /hydra/sweeper: dltrain_optuna
data: {shape: [1, 6, 6], num_classes: 3, num_train: 96, num_test: 32}
trainer: {max_epochs: 1}
hydra:
  sweep:
    dir: ${paths.log_dir}/${task_name}/sweeps/${hydra.sweeper.study_name}
    subdir: trial_${trial.number}
  sweeper:
    study_name: failing
    n_trials: 10
    sampler: {name: grid, seed: 0}
    pruner: none
    params:
      model: {choices: [mlp, nope]}
      model.activation: {choices: [relu, bogus]}
      optimizer.lr: {choices: [1.0e-3, 1.0e30]}
"""


def test_failing_trials_are_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    extra = tmp_path / "extra_configs"
    (extra / "hparams_search").mkdir(parents=True)
    (extra / "hparams_search" / "failing.yaml").write_text(FAILING)
    out = run_cli(
        ["-m", "data=synthetic", "hparams_search=failing", f"hydra.searchpath=[file://{extra}]"],
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    trials = summary_of(tmp_path, "failing")["trials"]
    assert len(trials) == 8  # the grid's size caps n_trials
    by_params = {tuple(t["params"].values()): t for t in trials}
    assert by_params[("mlp", "relu", 1e-3)]["state"] == "COMPLETE"
    nan = by_params[("mlp", "relu", 1e30)]
    assert nan["state"] == "FAIL"
    assert "loss became nan at epoch 0 — lower optimizer.lr" in nan["reason"]
    for lr in (1e-3, 1e30):
        bogus = by_params[("mlp", "bogus", lr)]
        assert bogus["state"] == "FAIL"
        assert bogus["reason"] == (
            "model.activation='bogus' is not one of the allowed values — "
            "use one of: relu, gelu, tanh, silu, leaky_relu"
        )
        results = json.loads((Path(bogus["run_dir"]) / "results.json").read_text())
        assert results["status"] == "failed" and results["reason"] == bogus["reason"]
        for act in ("relu", "bogus"):  # a group option that does not exist: no run at all
            nope = by_params[("nope", act, lr)]
            assert nope["state"] == "FAIL" and nope["run_dir"] is None
            assert nope["reason"].startswith("unknown option 'nope' for model")
    assert "8 trials (1 complete, 7 fail)" in out.stdout


def test_a_killed_sweep_leaves_no_trial_counted_as_running(tmp_path: Path) -> None:
    """SIGKILL mid-trial: the rerun records that trial as interrupted (not counted) and
    still completes the requested total."""
    args = [
        "-m",
        "hparams_search=digits_optuna",
        "hydra.sweeper.study_name=killed",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.pruner=none",
        "test=false",
    ]
    first = subprocess.Popen(
        [str(BIN / "dl-train"), *args, "trainer.max_epochs=100000"],  # runs until killed
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert first.stdout is not None
    for line in first.stdout:  # the trial is asked for (RUNNING) before it is launched
        if "#0 :" in line:
            break
    first.kill()
    first.wait(timeout=60)

    out = run_cli([*args, "trainer.max_epochs=1"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (
        "trial 0 was left running by a sweep process that no longer exists: "
        "recorded as interrupted, it does not count toward n_trials"
    ) in out.stdout
    assert "0 of 2 trials done" in out.stdout
    trials = summary_of(tmp_path, "killed")["trials"]
    states = {t["number"]: (t["state"], t["reason"]) for t in trials}
    assert states[0] == ("FAIL", "interrupted")
    assert [states[n][0] for n in (1, 2)] == ["COMPLETE", "COMPLETE"]


def test_sigterm_stops_the_sweep_and_the_same_command_continues(tmp_path: Path) -> None:
    args = [
        "-m",
        "hparams_search=digits_optuna",
        "hydra.sweeper.study_name=termed",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.pruner=none",
        "test=false",
    ]
    first = subprocess.Popen(
        [str(BIN / "dl-train"), *args, "trainer.max_epochs=100000"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert first.stdout is not None
    for line in first.stdout:
        if line.startswith("epoch 1:"):  # trial 0 is training
            break
    first.send_signal(signal.SIGTERM)
    rest, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    assert "error: interrupted — rerun the same command to resume" in err
    trials = summary_of(tmp_path, "termed")["trials"]
    assert [(t["number"], t["state"], t["reason"]) for t in trials] == [(0, "FAIL", "interrupted")]
    assert (Path(trials[0]["run_dir"]) / "checkpoints" / "last.ckpt").is_file()

    out = run_cli([*args, "trainer.max_epochs=1"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "0 of 2 trials done" in out.stdout
    states = [t["state"] for t in summary_of(tmp_path, "termed")["trials"]]
    assert states == ["FAIL", "COMPLETE", "COMPLETE"]
