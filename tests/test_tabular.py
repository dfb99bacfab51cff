"""Tabular data: preprocessing fitted on training rows, regression and classification
through dl-train / dl-eval / dl-predict, nets and boosted trees, errors, a pruned sweep.

Every table is a small CSV written here: numbers, strings, booleans, few-level integers,
missing values, a constant column."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import ROOT, run_cli, run_dir_of
from dltrain.commands.train import run
from dltrain.data.sources import tabular_prep as prep
from dltrain.data.sources.tabular import TabularDataModule
from dltrain.errors import UserError

CONFIGS = ROOT / "configs"
COLOR_EFFECT = {"red": 0.0, "green": 2.0, "blue": -2.0}


def truth(a: np.ndarray, b: np.ndarray, color: np.ndarray, flag: np.ndarray) -> np.ndarray:
    """The function the regression target follows (before noise)."""
    return 3 * a + 0.5 * b + np.vectorize(COLOR_EFFECT.get)(color) + 1.5 * flag


def write_table(path: Path, n: int = 400, seed: int = 0, classes: bool = False) -> pd.DataFrame:
    """Mixed types with gaps: a (float, NaN every 17th), b (float), color (strings, empty
    every 23rd), flag (booleans), level (integers 1..3: a category), const (7.0)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.uniform(0, 10, size=n)
    color = rng.choice(list(COLOR_EFFECT), size=n).astype(object)
    flag = rng.random(n) < 0.5
    y = truth(a, b, color, flag) + rng.normal(scale=0.1, size=n)
    a[::17] = np.nan
    color[::23] = None
    frame = pd.DataFrame(
        {"a": a, "b": b, "color": color, "flag": flag, "level": rng.integers(1, 4, size=n),
         "const": 7.0, "y": np.where(y > np.median(y), "high", "low") if classes else y}
    )  # fmt: skip
    frame.to_csv(path, index=False)
    return frame


def compose_run(tmp_path: Path, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(
            config_name="train",
            overrides=[f"paths.output_dir={tmp_path / 'run'}", "logger=none", *overrides],
        )


def results_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


# ---- preprocessing ----------------------------------------------------------------------------


def test_types_missing_values_unknown_levels_and_a_constant_column(tmp_path: Path) -> None:
    """Through the data module, as a run reads a table: types, medians, scaling and
    vocabularies come from the 300 training rows only. The 100 test rows hold a level
    training never saw, gaps, and 40 integer levels of 'level' that would make it a
    number column if the whole table were looked at."""
    write_table(tmp_path / "t.csv")
    frame = pd.read_csv(tmp_path / "t.csv")  # as a user's file is read
    frame["part"] = ["train"] * 300 + ["test"] * 100
    frame.loc[300, "color"] = "purple"
    frame.loc[301, ["a", "color"]] = [np.nan, np.nan]
    frame.loc[300:, "level"] = np.arange(100) % 40 + 4
    frame.to_csv(tmp_path / "t.csv", index=False)
    dm = TabularDataModule(path=str(tmp_path / "t.csv"), target="y", split_column="part")
    state = dm.prepare_table()
    train, rows = frame.iloc[:300], frame.iloc[300:].reset_index(drop=True)
    assert state.task == "regression"
    assert state.numeric == ["a", "b", "const"] and state.categorical == ["color", "flag", "level"]
    # Fitted on the training rows only.
    assert state.medians[0] == pytest.approx(float(train["a"].median()))
    assert state.centers[1] == pytest.approx(float(train["b"].mean()))
    assert state.indicators == ["a"]  # the only numeric column with gaps
    assert state.levels == {
        "color": ["blue", "green", "red"], "flag": ["False", "True"], "level": ["1", "2", "3"]
    }  # fmt: skip
    x = dm.test_set.x.numpy()
    assert x.shape == (len(rows), 3 + 1 + 3) and np.isfinite(x).all()
    a_missing = (state.medians[0] - state.centers[0]) / state.scales[0]
    assert x[1, 0] == pytest.approx(a_missing) and x[1, 3] == 1.0  # median + indicator
    assert x[0, 3] == float(np.isnan(rows.loc[0, "a"]))
    assert x[0, 4] == prep.UNKNOWN and x[1, 4] == prep.MISSING
    assert (x[:, 6] == prep.UNKNOWN).all()  # integer levels training never saw
    assert (x[:, 2] == 0).all()  # the constant column: centred, not divided by zero
    assert state.cardinalities == [5, 4, 5]  # levels + unknown + missing
    # The state is plain values: through a weights_only checkpoint, the same preprocessing.
    torch.save(dm.state_dict(), tmp_path / "dm.ckpt")
    stored = torch.load(tmp_path / "dm.ckpt", weights_only=True)["tabular"]
    again = prep.TabularState.from_dict(stored)
    assert np.array_equal(prep.features(again, dm.frames["test"]), x)


def test_quantile_scaling_matches_scikit_learn() -> None:
    from sklearn.preprocessing import QuantileTransformer

    rng = np.random.default_rng(1)
    train = pd.DataFrame({"v": rng.lognormal(size=3000), "y": rng.normal(size=3000)})
    state = prep.fit(train, "y", "regression", ["v"], [], scaling="quantile")
    new = pd.DataFrame({"v": rng.lognormal(size=200)})
    ours = prep.features(state, new)[:, 0]
    reference = QuantileTransformer(n_quantiles=1000, output_distribution="normal")
    expected = reference.fit(train[["v"]].to_numpy()).transform(new[["v"]].to_numpy())[:, 0]
    assert np.abs(ours - expected).max() < 1e-3


# ---- errors --------------------------------------------------------------------------------


def test_missing_table_is_one_line_on_stderr(tmp_path: Path) -> None:
    out = run_cli(["data=tabular", "data.path=none.csv", "data.target=y"], cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "error: table none.csv does not exist — set data.path to a .csv or .parquet file "
        "(relative paths start where dl-train runs)"
    )


def _error(tmp_path: Path, frame: pd.DataFrame, overrides: list[str]) -> str:
    frame.to_csv(tmp_path / "e.csv", index=False)
    cfg = compose_run(tmp_path, ["data=tabular", f"data.path={tmp_path / 'e.csv'}", *overrides])
    with pytest.raises(UserError) as err:
        run(cfg)
    return str(err.value)


def test_each_table_error_says_what_and_how_to_fix(tmp_path: Path) -> None:
    frame = write_table(tmp_path / "t.csv", n=60)
    assert _error(tmp_path, frame, ["data.target=price"]) == (
        "target column 'price' is not in the table — set data.target to one of: "
        "a, b, color, flag, level, const, y"
    )
    gaps = frame.copy()
    gaps.loc[[3, 5, 8], "y"] = np.nan
    assert _error(tmp_path, gaps, ["data.target=y"]) == (
        "target column 'y' has missing values in 3 of 60 rows — drop or fill those rows "
        "before training"
    )
    single = frame.assign(shop="main")
    assert _error(tmp_path, single, ["data.target=y"]) == (
        "category column 'shop' has a single level ('main') in the training split — drop it "
        "(data.drop=[shop]) or declare it numeric (data.numeric=[shop])"
    )
    assert _error(tmp_path, frame.iloc[:4], ["data.target=y"]) == (
        "the table has 4 rows: too few for data.test_fraction=0.2 and data.val_fraction=0.1 "
        "(each split needs a row, training two) — use a larger table, or larger fractions"
    )
    assert _error(tmp_path, frame, ["data.target=y", "model=cnn"]).endswith(
        "reads images, but data 'dltrain.data.sources.tabular.TabularDataModule' is a table — use "
        "model=mlp, model=ft_transformer, model=xgboost or model=lightgbm for tables"
    )


# ---- through the commands -----------------------------------------------------------------------


def read_predictions(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_regression_net_through_train_eval_and_predict(tmp_path: Path) -> None:
    write_table(tmp_path / "t.csv", n=615)  # 123 test rows, 49 validation rows: odd
    data = ["data=tabular", "data.path=t.csv", "data.target=y"]
    out = run_cli([*data, "model=mlp", "trainer.max_epochs=12", "optimizer.lr=0.01"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (  # 615 rows: 443 of them training rows, where the task is inferred
        "task: regression (inferred: target 'y' has 443 distinct numbers in the training rows; "
    ) in out.stdout
    run_dir = run_dir_of(tmp_path)
    metrics = results_of(run_dir)["metrics"]
    for stage in ("train", "val", "test"):
        assert {f"{stage}/{m}" for m in ("loss", "rmse", "mae", "r2")} <= set(metrics)
    assert metrics["test/r2"] > 0.9 and metrics["val/rmse_best"] <= metrics["val/rmse"] + 1e-6
    for name in ("learning_curves", "predicted_vs_true"):
        assert (run_dir / "plots" / f"{name}.png").is_file()
    ckpt = results_of(run_dir)["best_checkpoint"]

    out = run_cli([f"ckpt_path={ckpt}"], tmp_path, cmd="dl-eval")
    assert out.returncode == 0, out.stderr[-2000:]
    again = results_of(run_dir_of(tmp_path, "eval"))["metrics"]
    for key in ("test/rmse", "test/r2", "val/rmse"):
        assert again[key] == pytest.approx(metrics[key], rel=1e-5)
    # Two processes: the odd test and validation splits shard unevenly, the short shard is
    # padded (NaN targets) and the Regressor drops the padding: the same metrics exactly.
    ddp_dir = tmp_path / "eval_ddp"
    out = run_cli([f"ckpt_path={ckpt}", "trainer=ddp_cpu", f"hydra.run.dir={ddp_dir}"],
                  tmp_path, cmd="dl-eval")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    ddp = results_of(ddp_dir)["metrics"]
    for key in ("test/rmse", "test/r2", "test/mae", "test/loss", "val/rmse", "val/r2"):
        assert ddp[key] == pytest.approx(again[key], abs=1e-6), key

    rows = pd.DataFrame(
        {"a": [0.5, np.nan, 1.0], "b": [2.0, 4.0, 6.0], "color": ["red", "blue", "purple"],
         "flag": [True, False, True], "level": [1, 2, 9], "const": [7.0, 7.0, 7.0]}
    )  # fmt: skip
    rows.to_csv(tmp_path / "rows.csv", index=False)
    out = run_cli([f"ckpt_path={ckpt}", "inputs=rows.csv"], tmp_path, cmd="dl-predict")
    assert out.returncode == 0, out.stderr[-2000:]
    predicted = read_predictions(run_dir_of(tmp_path, "predict") / "predictions.csv")
    assert [p["row"] for p in predicted] == ["0", "1", "2"]
    value = float(predicted[0]["y_predicted"])
    assert value == pytest.approx(truth(np.array([0.5]), 2.0, np.array(["red"]), True)[0], abs=1)
    assert all(np.isfinite(float(p["y_predicted"])) for p in predicted)  # gap, unseen level


def test_classification_trees_through_train_eval_and_predict(tmp_path: Path) -> None:
    frame = write_table(tmp_path / "c.csv", n=600, classes=True)
    data = ["data=tabular", "data.path=c.csv", "data.target=y"]
    out = run_cli([*data, "model=xgboost", "model.n_estimators=200", "threads=1"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (
        "task: classification (inferred: target 'y' has 2 distinct values in the training rows; "
    ) in out.stdout
    run_dir = run_dir_of(tmp_path)
    results = results_of(run_dir)
    metrics = results["metrics"]
    assert metrics["test/acc"] > 0.85 and metrics["test/auroc"] > metrics["test/acc"]
    assert {"test/loss", "test/f1_macro", "val/acc_best", "train/acc"} <= set(metrics)
    assert results["best_checkpoint"].endswith("checkpoints/model.ckpt")
    for name in ("learning_curves", "confusion_matrix", "roc"):
        assert (run_dir / "plots" / f"{name}.png").is_file()
    rows = json.loads((run_dir / "history.json").read_text())["epochs"]
    assert "val/auroc" in rows[0] and len(rows) >= results["epochs"]

    out = run_cli([f"ckpt_path={results['best_checkpoint']}"], tmp_path, cmd="dl-eval")
    assert out.returncode == 0, out.stderr[-2000:]
    again = results_of(run_dir_of(tmp_path, "eval"))["metrics"]
    for key in ("test/acc", "test/auroc", "test/f1_macro", "val/acc"):
        assert again[key] == metrics[key]

    rows = frame.drop(columns=["y"]).iloc[:50]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    args = [f"ckpt_path={results['best_checkpoint']}", "inputs=rows.csv"]
    out = run_cli(args, tmp_path, cmd="dl-predict")
    assert out.returncode == 0, out.stderr[-2000:]
    predicted = read_predictions(run_dir_of(tmp_path, "predict") / "predictions.csv")
    assert len(predicted) == 50 and set(predicted[0]) == {
        "row", "y_predicted", "prob_high", "prob_low"
    }  # fmt: skip
    for p in predicted:
        probs = {"high": float(p["prob_high"]), "low": float(p["prob_low"])}
        assert sum(probs.values()) == pytest.approx(1, abs=1e-5)
        assert p["y_predicted"] == max(probs, key=probs.get)
    right = sum(p["y_predicted"] == y for p, y in zip(predicted, frame["y"], strict=False))
    assert right >= 45  # mostly training rows: the trees know them


@pytest.mark.parametrize(
    "model,task,extra",
    [
        ("lightgbm", "regression", ["threads=1"]),
        ("ft_transformer", "classification", ["trainer.max_epochs=2", "callbacks.plots=null"]),
    ],
)
def test_other_models_log_the_same_metric_names(
    tmp_path: Path, model: str, task: str, extra: list[str]
) -> None:
    # LightGBM splits a category only with 100 rows a level (min_data_per_group): 1000 rows.
    write_table(
        tmp_path / "t.csv", n=1000 if model == "lightgbm" else 300, classes=task != "regression"
    )
    data = ["data=tabular", f"data.path={tmp_path / 't.csv'}", "data.target=y", f"task={task}"]
    value = run(compose_run(tmp_path, [*data, f"model={model}", *extra]))
    metrics = results_of(tmp_path / "run")["metrics"]
    if task == "regression":
        assert value == metrics["val/rmse_best"]
        assert metrics["test/r2"] > 0.8
        assert {f"{s}/{m}" for s in ("train", "val", "test") for m in ("rmse", "mae", "r2")} <= set(
            metrics
        )
    else:
        assert value == metrics["val/acc_best"]
        assert {"test/acc", "test/auroc", "test/f1_macro", "train/acc"} <= set(metrics)


def test_tree_sweep_prunes_trials_on_the_validation_metric(tmp_path: Path) -> None:
    write_table(tmp_path / "t.csv", n=400)
    out = run_cli(
        [
            "-m",
            "hparams_search=diamonds_xgboost_optuna",
            "data.path=t.csv",
            "data.target=y",
            "data.target_transform=null",
            "threads=1",
            "model.n_estimators=60",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.sampler.n_startup_trials=4",
            "hydra.sweeper.pruner.n_startup_trials=1",
            "hydra.sweeper.pruner.n_warmup_steps=5",
            "hydra.sweeper.params={model.learning_rate:{type:float,low:0.002,high:0.5,log:true}}",
        ],
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    sweeps = tmp_path / "outputs" / "diamonds_xgboost_optuna" / "sweeps"
    summary = json.loads(next(sweeps.glob("*/sweep_summary.json")).read_text())
    assert summary["direction"] == "minimize"  # direction: auto, from val/rmse_best
    states = [t["state"] for t in summary["trials"]]
    assert len(states) == 4 and "PRUNED" in states and "COMPLETE" in states, states
    for t in summary["trials"]:
        results = results_of(Path(t["run_dir"]))
        if t["state"] == "PRUNED":
            assert results["status"] == "pruned"
            assert results["reason"].startswith("Trial was pruned at iteration")
        else:
            assert results["metrics"]["val/rmse_best"] == t["value"]
