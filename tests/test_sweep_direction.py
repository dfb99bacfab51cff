"""A sweep's direction follows its optimized metric unless ``hydra.sweeper.direction``
is given: one rule (``dltrain.config.task.metric_mode``) for sweeps, ``monitor_mode``
and tree pruning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import run_cli
from dltrain.config.task import metric_mode, sweep_directions
from dltrain.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("val/loss", "min"),
        ("val/rmse_best", "min"),
        ("test/mae", "min"),
        ("val/smooth_loss", "min"),
        ("mlogloss", "min"),  # XGBoost's, as tree pruning sees it
        ("binary_logloss", "min"),  # LightGBM's
        ("val/acc_best", "max"),
        ("test/r2", "max"),
        ("test/auroc", "max"),
        ("auc", "max"),
        ("test/f1_macro", "max"),
        ("lr-Adam", None),
    ],
)
def test_metric_mode_knows_which_metrics_are_minimised(name: str, mode: str | None) -> None:
    assert metric_mode(name) == mode


def test_sweep_directions_follow_the_metrics_unless_given() -> None:
    assert sweep_directions(None, ["val/rmse_best"], "regression") == ["minimize"]
    assert sweep_directions("auto", ["val/r2"], "regression") == ["maximize"]
    # a regression run turns the classification default into val/rmse_best
    assert sweep_directions(None, ["val/acc_best"], "regression") == ["minimize"]
    assert sweep_directions(None, ["val/loss", "val/acc_best"], "classification") == [
        "minimize",
        "maximize",
    ]
    assert sweep_directions("minimize", ["val/loss"], "classification") == "minimize"
    assert sweep_directions(["maximize", "minimize"], ["a", "b"], None) == [
        "maximize",
        "minimize",
    ]
    with pytest.raises(ConfigError) as ex:
        sweep_directions(None, ["lr-Adam"], "classification")
    assert str(ex.value) == (
        "hydra.sweeper.direction is not set and optimized_metric 'lr-Adam' does not say "
        "whether lower or higher is better — set hydra.sweeper.direction=minimize|maximize"
    )
    with pytest.raises(ConfigError) as ex:
        sweep_directions(None, ["val/acc_best"], None)  # a table, task inferred later
    assert str(ex.value) == (
        "hydra.sweeper.direction is not set and optimized_metric 'val/acc_best' becomes "
        "val/rmse_best if the table's target turns out numeric — set "
        "task=classification|regression or hydra.sweeper.direction"
    )


def test_a_sweep_without_direction_optimizes_each_metric_its_way(tmp_path: Path) -> None:
    out = run_cli(
        [
            "-m",
            "hparams_search=digits_optuna",  # gives no direction
            "optimized_metric=[val/loss,val/acc_best]",
            "hydra.sweeper.n_trials=1",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=3",
            "test=false",
        ],
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary_path = next((tmp_path / "outputs").rglob("sweep_summary.json"))
    summary = json.loads(summary_path.read_text())
    assert summary["direction"] == ["minimize", "maximize"]
    assert [t["state"] for t in summary["trials"]] == ["COMPLETE"]


def test_a_given_direction_that_contradicts_its_metric_is_refused() -> None:
    """Before: a given direction was trusted, whatever the metric (a study maximising
    RMSE ranked the worst trial best)."""
    with pytest.raises(ConfigError) as ex:
        sweep_directions("maximize", ["val/loss"], "classification")
    assert str(ex.value) == (
        "hydra.sweeper.direction=maximize contradicts optimized_metric 'val/loss', where "
        "lower is better — set hydra.sweeper.direction=minimize, or leave it out (it "
        "follows the metric)"
    )
    # A table: the metric the regression run logs, named beside the one written.
    with pytest.raises(ConfigError) as ex:
        sweep_directions(["maximize"], ["val/acc_best"], "regression")
    assert str(ex.value) == (
        "hydra.sweeper.direction=maximize contradicts optimized_metric 'val/rmse_best', "
        "where lower is better; the target is numeric, so val/acc_best is val/rmse_best — "
        "set hydra.sweeper.direction=minimize, or leave it out (it follows the metric), "
        "or task=classification"
    )
    # One direction per metric: the second contradicts its metric.
    with pytest.raises(
        ConfigError, match="direction=minimize contradicts optimized_metric 'val/r2'"
    ):
        sweep_directions(["minimize", "minimize"], ["val/loss", "val/r2"], "regression")
    # A score minimised; a list from the config.
    with pytest.raises(ConfigError) as ex:
        sweep_directions(OmegaConf.create(["minimize"]), ["test/auroc"], "classification")
    assert str(ex.value).startswith(
        "hydra.sweeper.direction=minimize contradicts optimized_metric 'test/auroc', where "
        "higher is better — set hydra.sweeper.direction=maximize"
    )
    # Not known yet (a table's task before it is read): checked again once it is; a
    # name no task renames is checked at once.
    assert sweep_directions("maximize", ["val/acc_best"], None) == "maximize"
    assert sweep_directions("minimize", ["val/acc_best"], None) == "minimize"
    with pytest.raises(
        ConfigError, match="direction=maximize contradicts optimized_metric 'val/loss'"
    ):
        sweep_directions("maximize", ["val/loss"], None)
    # As many directions as metrics is check_metrics' rule (its own message).
    assert sweep_directions(["minimize", "maximize"], ["val/loss"], None) == [
        "minimize",
        "maximize",
    ]
    assert sweep_directions("minimize", ["val/acc_best"], "regression") == "minimize"
    # A name that does not tell, and a direction the study itself refuses: left alone.
    assert sweep_directions("minimize", ["lr-Adam"], "classification") == "minimize"
    assert sweep_directions("upward", ["val/acc"], "classification") == "upward"


def test_settle_renames_the_metrics_a_regression_run_logs() -> None:
    from omegaconf import OmegaConf

    from dltrain.commands.settle import settle
    from dltrain.config.task import logged_name

    assert logged_name("val/acc_best", "regression") == "val/rmse_best"
    assert logged_name("val/acc_best", "classification") == "val/acc_best"
    assert logged_name("val/loss", "regression") == "val/loss"
    cfg = OmegaConf.create(
        {
            "monitor": "val/acc",
            "monitor_mode": "max",
            "optimized_metric": ["val/acc_best", "val/loss"],
        }
    )
    settle(cfg, "regression")
    assert OmegaConf.to_container(cfg) == {
        "monitor": "val/rmse",
        "monitor_mode": "min",
        "optimized_metric": ["val/rmse_best", "val/loss"],
        "task": "regression",
        "module": {"_target_": "dltrain.module.regressor.Regressor", "monitor": "${monitor}"},
    }


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("", None),
        (None, None),
        ("val/mse", "min"),
        ("val/error", "min"),
        ("val/mae_best", "min"),
        ("val/accuracy", "max"),
        ("val/f1_weighted", "max"),
        ("val/r2_best", "max"),
        ("val/my_score", None),
    ],
)
def test_metric_mode_of_other_names(name: str | None, mode: str | None) -> None:
    assert metric_mode(name) == mode


def test_what_the_config_tells_before_any_data_is_read() -> None:
    from omegaconf import OmegaConf

    from dltrain.config.task import direction_given, task_before_data

    table = {"_target_": "dltrain.data.sources.tabular.TabularDataModule"}
    assert task_before_data(OmegaConf.create({"task": "regression", "data": table})) == (
        "regression"
    )
    assert task_before_data(OmegaConf.create({"task": None, "data": table})) is None
    digits = {"_target_": "dltrain.data.sources.digits.DigitsDataModule"}
    assert task_before_data(OmegaConf.create({"task": None, "data": digits})) == ("classification")
    assert task_before_data(OmegaConf.create({})) == "classification"
    assert [direction_given(d) for d in (None, "auto", "maximize", ["minimize"])] == [
        False,
        False,
        True,
        True,
    ]


def test_settle_writes_what_the_data_turned_out_to_be() -> None:
    from omegaconf import OmegaConf

    from dltrain.commands.settle import settle

    spec = {"numeric": 3, "categories": [4]}
    data = {"shape": (5,), "num_classes": 3, "tabular": spec}
    cfg = OmegaConf.create(
        {
            "data": {"shape": [1], "num_classes": 2},
            "model": {"_target_": "dltrain.nets.ft_transformer.FTTransformer"},
            "module": {"_target_": "my.Module"},
            "monitor": "val/my_score",
            "monitor_mode": "max",
            "optimized_metric": "val/acc_best",
        }
    )
    settle(cfg, "classification", data)
    assert (cfg.task, cfg.data.shape, cfg.data.num_classes) == ("classification", [5], 3)
    assert OmegaConf.to_container(cfg.model.tabular) == spec
    assert (cfg.module._target_, cfg.monitor_mode, cfg.optimized_metric) == (
        "my.Module",
        "max",
        "val/acc_best",
    )
    # A model that takes no feature description, one that cannot be imported, none.
    for model in ({"_target_": "dltrain.nets.cnn.CNN"}, {"_target_": "no.such.Net"}, {}):
        cfg = OmegaConf.create({"data": {}, "model": model, "monitor": "val/loss"})
        settle(cfg, None, data)
        assert "tabular" not in cfg.model and cfg.task == "classification"
        assert cfg.monitor_mode == "min"
    cfg = OmegaConf.create({"data": {}})
    settle(cfg, "classification", data)
    assert "model" not in cfg and cfg.data.num_classes == 3
    # The built-in classifier becomes the regressor.
    cfg = OmegaConf.create({"module": {"_target_": "dltrain.module.classifier.Classifier"}})
    settle(cfg, "regression")
    assert cfg.module._target_ == "dltrain.module.regressor.Regressor"
    # The user's own module is kept for regression; the task given in the config wins.
    cfg = OmegaConf.create({"task": "regression", "module": {"_target_": "my.Module"}})
    settle(cfg)
    assert (cfg.task, cfg.module._target_) == ("regression", "my.Module")
    cfg = OmegaConf.create({"task": "regression", "monitor": "val/acc"})
    settle(cfg)
    assert cfg.module._target_ == "dltrain.module.regressor.Regressor"
    assert (cfg.monitor, cfg.monitor_mode) == ("val/rmse", "min")
