"""When a sweep's failure is one every trial shares, decided on evidence (in-process):
the config without sampled values fails alike, or the first failures with distinct
values all fail alike; a completed sibling, a runtime failure or
``stop_on_shared_error: false`` mean it is not. Before: any setup error of the first
trial whose message named no sampled value (short values were skipped) stopped the
sweep, and every trial of a first batch counted as "the first"."""

from __future__ import annotations

import optuna
import pytest
from omegaconf import OmegaConf

from dltrain.errors import ConfigError, DataError, RunError
from dltrain.sweep import loop, stopping
from dltrain.sweep.run import Base, name_study
from dltrain.sweep.stopping import Shared, SharedErrors

HEADS = ConfigError("embed_dim must be divisible by num_heads")
NO_DATA = DataError("MNIST not found", "set paths.data_dir")


def base_failing(message: str | None):
    """A ``base_error`` that counts its calls."""
    calls = []

    def base_error() -> str | None:
        calls.append(1)
        return message

    return base_error, calls


def test_a_failure_the_config_without_sampled_values_shares_is_shared() -> None:
    base_error, calls = base_failing("MNIST not found — set paths.data_dir")
    shared = SharedErrors(base_error)
    assert shared.judge([(0, {"optimizer.lr": 0.1}, NO_DATA)]) == Shared(0, NO_DATA, [0])
    assert len(calls) == 1


def test_a_failure_of_one_sampled_value_is_not_shared() -> None:
    """The FT-Transformer case: heads=3 fails in the constructor, the base builds."""
    base_error, calls = base_failing(None)
    shared = SharedErrors(base_error)
    assert shared.judge([(0, {"model.heads": 3}, HEADS)]) is None
    assert shared.judge([(1, {"model.heads": 3}, HEADS)]) is None  # the same values again
    assert shared.judge([(2, {"model.heads": 2}, None)]) is None
    assert shared.went_on
    assert len(calls) == 1  # built once, at the first failure


def test_the_first_k_failures_with_distinct_values_agreeing_are_shared() -> None:
    shared = SharedErrors(base_failing(None)[0], k=3)
    error = ConfigError("optimized_metric 'val/x' was not logged by this run")
    assert shared.judge([(0, {"lr": 0.1, "act": "relu"}, error)]) is None
    assert shared.judge([(1, {"lr": 0.2, "act": "relu"}, error)]) is None
    assert shared.judge([(2, {"lr": 0.3, "act": "gelu"}, error)]) == Shared(2, error, [0, 1, 2])


def test_failures_that_one_value_explains_are_not_shared() -> None:
    """Three distinct trials fail alike, but all of them sampled model=nope."""
    shared = SharedErrors(base_failing(None)[0], k=3)
    error = ConfigError("unknown option 'nope' for model")
    outcomes = [(n, {"model": "nope", "lr": lr}, error) for n, lr in enumerate((1, 2, 3))]
    assert shared.judge(outcomes) is None
    # The same values three times are one set of values, not three.
    shared = SharedErrors(base_failing(None)[0], k=3)
    assert shared.judge([(n, {"lr": 1}, error) for n in range(3)]) is None
    # Messages that differ are not one error.
    shared = SharedErrors(base_failing(None)[0], k=3)
    other = ConfigError("another message")
    outcomes = [(0, {"lr": 1}, error), (1, {"lr": 2}, other), (2, {"lr": 3}, error)]
    assert shared.judge(outcomes) is None
    assert shared.judge([(3, {"lr": 4}, error)]) is None


def test_values_are_told_apart_by_key_too() -> None:
    shared = SharedErrors(base_failing(None)[0], k=2)
    error = ConfigError("the same")
    outcomes = [(0, {"a": 1, "b": 2}, error), (1, {"a": 2, "b": 1}, error)]
    assert shared.judge(outcomes) == Shared(1, error, [0, 1])


def test_a_runtime_failure_does_not_hide_the_next_failure_of_its_batch() -> None:
    nan = RunError("val/loss became nan at epoch 0")
    shared = SharedErrors(base_failing("MNIST not found — set paths.data_dir")[0])
    batch = [(0, {"lr": 1}, nan), (1, {"lr": 2}, NO_DATA)]
    assert shared.judge(batch) == Shared(1, NO_DATA, [1])


def test_a_completed_sibling_means_no_failure_is_shared() -> None:
    """n_jobs=3: one trial of the first batch completed, so the setup works."""
    base_error, calls = base_failing("MNIST not found — set paths.data_dir")
    shared = SharedErrors(base_error, k=2)
    batch = [(0, {"lr": 1}, NO_DATA), (1, {"lr": 2}, None), (2, {"lr": 3}, NO_DATA)]
    assert shared.judge(batch) is None
    assert shared.judge([(3, {"lr": 4}, NO_DATA)]) is None  # nor later
    assert calls == []


def test_runtime_failures_and_a_switched_off_check_are_never_shared() -> None:
    nan = RunError("val/loss became nan at epoch 0", "lower optimizer.lr")
    shared = SharedErrors(base_failing(str(nan))[0], k=1)
    assert shared.judge([(0, {"lr": 1}, nan)]) is None
    # stop_on_shared_error=false
    shared = SharedErrors(base_failing("MNIST not found — set paths.data_dir")[0], enabled=False)
    assert shared.judge([(0, {"lr": 1}, NO_DATA)]) is None
    # No builder (jobs on other machines): only the first failures can tell.
    shared = SharedErrors(None, k=2)
    assert shared.base_message() is None
    two = [(0, {"lr": 1}, NO_DATA), (1, {"lr": 2}, NO_DATA)]
    assert shared.judge(two) == Shared(1, NO_DATA, [0, 1])


def test_a_launch_that_failed_for_the_whole_batch_is_compared_with_the_base_only() -> None:
    shared = SharedErrors(base_failing(None)[0], k=2)
    error = ConfigError("unknown option 'nope' for model")
    assert shared.judge([(0, None, error), (1, None, error)]) is None
    assert shared.judge([(2, {"lr": 1}, error), (3, {"lr": 2}, error)]) is None
    shared = SharedErrors(base_failing(str(error))[0])
    assert shared.judge([(0, None, error)]) == Shared(0, error, [0])


def test_shared_failures_stop_the_sweep_and_do_not_count() -> None:
    study = optuna.create_study()
    sweep = loop.Sweep(study, "", [], [], 5, 1, None, shared=SharedErrors(None, k=2))
    trials = [study.ask() for _ in range(3)]
    for n, trial in enumerate(trials):
        trial.suggest_float("lr", 0.0, 1.0)
        loop.fail(study, trial, "MNIST not found")
        if n == 0:
            loop._after_batch(sweep, [(trial, {"lr": 0.1}, NO_DATA)])
    with pytest.raises(stopping.SweepStopped) as ex:
        loop._after_batch(sweep, [(trials[1], {"lr": 0.2}, NO_DATA)])
    assert (ex.value.number, ex.value.shared) == (1, True)
    assert str(ex.value.as_user_error()) == "MNIST not found — set paths.data_dir"
    assert ex.value.as_user_error().exit_code == 2
    assert loop.shared_trials(study) == {0, 1}
    assert loop.counted(study) == 1  # trial 2 failed for its own reason: it counts
    assert (sweep.finished, sweep.failed) == (2, 2)


def fake_load(log: list):
    def load(overrides: list[str]):
        log.append(list(overrides))
        return OmegaConf.create({"hydra": {"x": 1}, "values": list(overrides)})

    return load


def failing_build(errors: dict):
    """A build that raises ``errors[tuple(values)]``, if any; records its calls."""
    calls = []

    def build(cfg, deep: bool) -> None:
        calls.append((list(cfg["values"]), deep))
        error = errors.get(tuple(cfg["values"]))
        if error is not None:
            raise error

    return build, calls


def test_before_trial_0_the_config_without_sampled_values_is_built() -> None:
    log: list = []
    build, calls = failing_build({})
    cfg = Base(fake_load(log), ["model.heads=3"], build).settle()
    assert OmegaConf.to_container(cfg) == {"values": []}  # the task's view: no hydra node
    assert (log, calls) == ([[]], [([], False)])
    # No builder: composed, not built.
    log = []
    assert Base(fake_load(log), ["x=1"], None).settle()["values"] == []
    assert log == [[]]


def test_a_base_failure_the_example_values_share_stops_before_trial_0(capsys) -> None:
    error = ConfigError("embed_dim must be divisible by num_heads", "fix model.heads")
    build, calls = failing_build({(): error, ("model.heads=3",): error})
    with pytest.raises(ConfigError) as ex:
        Base(fake_load([]), ["model.heads=3"], build).settle()
    assert str(ex.value) == "embed_dim must be divisible by num_heads — fix model.heads"
    assert ex.value.exit_code == 2
    assert calls == [([], False), (["model.heads=3"], False)]
    assert capsys.readouterr().out.startswith("sweep stopped before its first trial")


def test_a_base_failure_the_example_values_do_not_share_goes_on() -> None:
    error = ConfigError("embed_dim must be divisible by num_heads")
    build, _ = failing_build({(): error})
    assert Base(fake_load([]), ["model.heads=2"], build).settle()["values"] == ["model.heads=2"]
    other = ConfigError("another")
    build, _ = failing_build({(): error, ("model.heads=2",): other})
    assert Base(fake_load([]), ["model.heads=2"], build).settle()["values"] == []


def test_the_deep_build_reports_the_message_of_its_error() -> None:
    build, calls = failing_build({(): NO_DATA})
    assert Base(fake_load([]), [], build).deep_error() == "MNIST not found — set paths.data_dir"
    assert calls == [([], True)]
    build, _ = failing_build({})
    assert Base(fake_load([]), [], build).deep_error() is None


def test_a_study_name_left_null_names_the_sweep_directory() -> None:
    cfg = OmegaConf.create(
        {
            "task_name": "train",
            "hydra": {
                "sweeper": {"study_name": None},
                "runtime": {"choices": {"hparams_search": "digits_optuna"}},
                "sweep": {"dir": "outputs/sweeps/${hydra.sweeper.study_name}"},
            },
        }
    )
    OmegaConf.set_readonly(cfg, True)
    settings = {"study_name": None}
    name_study(cfg, settings)
    assert cfg.hydra.sweep.dir == "outputs/sweeps/digits_optuna"
    assert settings["study_name"] == "digits_optuna"
    cfg = OmegaConf.create({"task_name": "train", "hydra": {"sweeper": {"study_name": ""}}})
    name_study(cfg, {"study_name": ""})
    assert cfg.hydra.sweeper.study_name == "train"
    name_study(cfg, {"study_name": "mine"})
    assert cfg.hydra.sweeper.study_name == "mine"


def test_a_stopped_sweep_says_why_and_exits_with_the_right_code() -> None:
    from hydra.errors import HydraException

    stop = stopping.SweepStopped(4, NO_DATA, shared=True)
    assert stop.explanation(0.5) == (
        "sweep stopped: trial 4 failed for a reason that does not depend on its sampled "
        "values, so every trial would fail the same way (trials that failed for it do not "
        "count toward n_trials)"
    )
    assert (type(stop.as_user_error()), stop.as_user_error().fix) == (
        ConfigError,
        "set paths.data_dir",
    )
    stop = stopping.SweepStopped(2, RunError("val/loss became nan", "lower lr"), shared=False)
    assert stop.explanation(0.25) == (
        "sweep stopped: more than 0.25 of its trials failed (hydra.sweeper.max_failure_rate), "
        "the last one trial 2"
    )
    assert stop.as_user_error() is stop.error and stop.as_user_error().exit_code == 1
    assert str(stop) == "val/loss became nan — lower lr"
    bug = stopping.SweepStopped(1, ValueError("boom"), shared=False).as_user_error()
    assert (type(bug), bug.exit_code) == (RunError, 1) and str(bug).startswith("ValueError: boom")
    hydra = stopping.SweepStopped(1, HydraException("bad"), shared=False).as_user_error()
    assert (type(hydra), str(hydra)) == (
        ConfigError,
        "invalid configuration: bad — check the overrides (see dl-train --help)",
    )
    shared = stopping.SweepStopped(1, ValueError("boom"), shared=True).as_user_error()
    assert type(shared) is ConfigError and str(shared).startswith("ValueError: boom — this")


def test_metric_names_of_one_name_or_several() -> None:
    assert stopping.metric_names(None) == []
    assert stopping.metric_names("val/loss") == ["val/loss"]
    assert stopping.metric_names(("val/loss", "val/acc")) == ["val/loss", "val/acc"]
    assert stopping.metric_names(OmegaConf.create(["val/loss"])) == ["val/loss"]


def check(job: dict, directions=None) -> str | None:
    try:
        stopping.check_metrics(OmegaConf.create(job), directions)
    except ConfigError as ex:
        return str(ex)
    return None


def test_metric_names_are_checked_against_what_the_run_logs() -> None:
    """In-process: the checks a sweep runs before its first trial (and again once a
    table's task is known)."""
    assert check({}) == (
        "a sweep needs optimized_metric, the value it optimizes — set "
        "optimized_metric=val/acc_best (or another logged metric)"
    )
    assert check({"optimized_metric": ["val/loss", "val/acc"]}, ["minimize"]) == (
        "optimized_metric has 2 name(s) but hydra.sweeper.direction has 1 — give one "
        "direction per optimized metric, e.g. optimized_metric=[val/loss,val/acc_best] "
        "hydra.sweeper.direction=[minimize,maximize]"
    )
    assert check({"optimized_metric": ["val/loss", "val/acc"]}, ["minimize", "maximize"]) is None
    assert check({"optimized_metric": "val/acc_bst"}) == (
        "optimized_metric 'val/acc_bst' is not a metric dl-train logs (did you mean "
        "'val/acc_best'?) — use one of: train/loss, train/acc, val/loss, val/acc, "
        "val/acc_best, test/loss, test/acc, lr-<optimizer>"
    )
    # The user's own module, and a table whose task is not known yet: not checked here.
    assert check({"optimized_metric": "val/x", "module": {"_target_": "my.Module"}}) is None
    table = {"_target_": "dltrain.data.sources.tabular.TabularDataModule"}
    assert check({"optimized_metric": "val/x", "data": table}) is None
    # Once known (settle wrote cfg.task): a regression run logs val/rmse_best, not acc.
    job = {"optimized_metric": "val/acc_best", "data": table, "task": "regression"}
    assert check(job).startswith("optimized_metric 'val/acc_best' is not a metric dl-train")
    assert check({**job, "optimized_metric": "val/rmse_best"}) is None
    # The built-in modules, extra metrics and the learning rate.
    builtin = {"_target_": "dltrain.module.classifier.Classifier"}
    extra = {"metrics": {"val": ["auroc"]}, "module": builtin}
    assert check({"optimized_metric": ["val/auroc", "lr-Adam"], **extra}) is None
    assert check({"optimized_metric": "test/acc", "test": False}) == (
        "optimized_metric 'test/acc' is logged only when the run tests (test=false) — "
        "set test=true or optimize a val/ metric"
    )
    assert check({"optimized_metric": "test/acc", "test": True}) is None
    # Extra metrics as the run resolves them; the list the error offers follows the
    # task and the extra metrics.
    job = {"optimized_metric": "val/auroc", "name": "auroc", "metrics": {"val": ["${name}"]}}
    assert check(job) is None
    assert check({**job, "optimized_metric": "val/aurok"}) == (
        "optimized_metric 'val/aurok' is not a metric dl-train logs (did you mean "
        "'val/auroc'?) — use one of: train/loss, train/acc, val/loss, val/acc, val/acc_best, "
        "test/loss, test/acc, val/auroc, lr-<optimizer>"
    )
    job = {"optimized_metric": "val/rmse_bst", "task": "regression"}
    assert check(job).endswith(
        "use one of: train/loss, train/rmse, train/mae, train/r2, val/loss, val/rmse, "
        "val/mae, val/r2, test/loss, test/rmse, test/mae, test/r2, val/rmse_best, "
        "lr-<optimizer>"
    )
    assert check({"optimized_metric": "test/acc"}) is None


def test_stop_on_shared_error_is_a_sweeper_setting() -> None:
    from hydra import compose, initialize_config_dir

    from conftest import ROOT

    overrides = ["hparams_search=digits_optuna", "hydra.sweeper.stop_on_shared_error=false"]
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    assert cfg.hydra.sweeper.stop_on_shared_error is False
