"""Each tracker option end to end, offline: the same metric names and the config as
hyperparameters in every one (csv and tensorboard alone run in test_train.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from conftest import ROOT
from dltrain.commands.train import run

CONFIGS = ROOT / "configs"
SMALL = ["data=synthetic", "data.shape=[1,6,6]", "data.num_classes=3", "trainer.max_epochs=2"]
METRICS = {
    "train/loss",
    "train/acc",
    "val/loss",
    "val/acc",
    "val/acc_best",
    "test/loss",
    "test/acc",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store for the module: creating its tables is most of an MLflow run's cost."""
    return tmp_path_factory.mktemp("store")


def train(tmp_path: Path, overrides: list[str], log_dir: Path | None = None) -> Path:
    out = tmp_path / "run"
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                f"paths.output_dir={out}",
                f"paths.log_dir={log_dir or tmp_path}",
                *overrides,
            ],
        )
    run(cfg)
    assert json.loads((out / "results.json").read_text())["status"] == "completed"
    return out


def mlflow_run(uri: str, run_dir: Path) -> tuple[set[str], dict[str, str]]:
    """(metric names, params) of the MLflow run tagged with this run dir."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("train")
    runs = client.search_runs([experiment.experiment_id])
    (found,) = [r for r in runs if r.data.tags.get("run_dir") == str(run_dir)]
    return set(found.data.metrics), found.data.params


def test_mlflow_alone_in_a_local_sqlite_store(tmp_path: Path, store: Path) -> None:
    run_dir = train(tmp_path, ["logger=mlflow", *SMALL], log_dir=store)
    db = store / "mlflow.db"  # ${paths.log_dir}/mlflow.db
    assert db.is_file()
    metrics, params = mlflow_run(f"sqlite:///{db}", run_dir)
    assert METRICS <= metrics
    assert params["optimizer/lr"] == "0.001" and params["model/_target_"].endswith("MLP")
    assert not (run_dir / "csv").exists() and not (run_dir / "tensorboard").exists()


def test_many_loggers_record_the_same_names(tmp_path: Path, store: Path) -> None:
    """logger=many: CSV, TensorBoard and MLflow (at a tracking URI of our choosing)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    uri = f"sqlite:///{store / 'mlflow.db'}"  # not under this run's paths.log_dir
    run_dir = train(tmp_path, ["logger=many", f"logger.mlflow.tracking_uri={uri}", *SMALL])

    with (run_dir / "csv" / "metrics.csv").open() as f:
        csv_names = set(next(csv.reader(f))) - {"epoch", "step"}
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tb_names = set(events.Tags()["scalars"]) - {"epoch"}
    mlflow_names, mlflow_params = mlflow_run(uri, run_dir)
    mlflow_names -= {"epoch"}  # Lightning logs the epoch counter as a metric to both

    assert METRICS <= csv_names
    assert csv_names == tb_names == mlflow_names
    # The config as hyperparameters, with the same flattened keys in each.
    csv_hp = yaml.safe_load((run_dir / "csv" / "hparams.yaml").read_text())
    tb_hp = yaml.safe_load((run_dir / "tensorboard" / "hparams.yaml").read_text())
    assert csv_hp["optimizer/lr"] == tb_hp["optimizer/lr"] == 0.001
    assert mlflow_params["optimizer/lr"] == "0.001"
    assert set(csv_hp) == set(tb_hp) == set(mlflow_params)
    assert not (tmp_path / "mlflow.db").exists()  # the URI given was used instead
