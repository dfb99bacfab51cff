"""A sweep's direction follows its optimized metric unless ``hydra.sweeper.direction``
is given: one rule (``dltrain.config.task.metric_mode``) for sweeps, ``monitor_mode``
and tree pruning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
    assert sweep_directions("maximize", ["val/loss"], "classification") == "maximize"
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
    assert "set task=classification|regression or hydra.sweeper.direction" in str(ex.value)


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
