"""Installing dl-train anywhere: extras, the wheel, a user's project folder, dl-init."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from conftest import ROOT, run_cli

# Makes the named modules and their distributions look not installed, as in a base
# install without an extra (Lightning and torchmetrics ask importlib.metadata first).
ABSENT = """
import importlib.metadata as _md
import os
import sys

_names = set(os.environ["DLTRAIN_TEST_ABSENT"].split(","))


class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def _hide(real):
    def hidden(name, *args, **kwargs):
        if name.replace("-skinny", "") in _names:
            raise _md.PackageNotFoundError(name)
        return real(name, *args, **kwargs)

    return hidden


_md.version, _md.distribution = _hide(_md.version), _hide(_md.distribution)
sys.meta_path.insert(0, _Absent())
"""
EXTRA_MODULES = ("transformers", "tokenizers", "datasets", "mlflow", "tensorboard", "tensorboardX")


def _without(tmp_path: Path, *modules: str) -> dict[str, str]:
    shim = tmp_path / "absent"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(ABSENT)
    path = os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "DLTRAIN_TEST_ABSENT": ",".join(modules)}


def test_extras_all_is_the_union_of_the_others() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    others = {req for name, reqs in extras.items() if name not in ("all", "dev") for req in reqs}
    assert set(extras["all"]) == others
    assert {"text", "mlflow", "tensorboard"} <= set(extras)


def test_without_extras_the_digits_train_and_configs_needing_one_fail_at_once(
    tmp_path: Path,
) -> None:
    env = _without(tmp_path, *EXTRA_MODULES)
    r = run_cli(["debug=fast", "hydra.run.dir=outputs/base"], tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads((tmp_path / "outputs" / "base" / "results.json").read_text())
    assert results["status"] == "completed" and results["steps"] == 1
    r = run_cli(["model=hf_classifier"], tmp_path, env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (
        "error: model=hf_classifier needs the text extra — pip install 'dl-train[text]'"
    )
    r = run_cli(["logger=mlflow", "debug=fast"], tmp_path, env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (
        "error: logger=mlflow needs the mlflow extra — pip install 'dl-train[mlflow]'"
    )
    assert not (tmp_path / "outputs" / "debug" / "runs").exists() or not any(
        (tmp_path / "outputs" / "debug" / "runs").iterdir()
    )


# ---- the wheel, installed outside the checkout -------------------------------------------

BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "configs", "src")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the checkout, installed into a --target folder that
    reuses this environment's dependencies (nothing is downloaded)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(item, source / name)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", base / "dist", source],
        check=True,
    )
    (wheel,) = (base / "dist").glob("dl_train-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert {"dltrain/configs/train.yaml", "dltrain/configs/module/classifier.yaml"} <= names
    target = base / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", target, wheel], check=True)
    return target


def _run(target: Path, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """A command of the installed wheel: ``python -m dltrain`` or one of its scripts, with
    only the wheel's folder on PYTHONPATH (not the checkout's src/)."""
    full = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "PYTHONPATH")}
    full.update(PYTHONPATH=str(target), OMP_NUM_THREADS="1", **env)
    if args[0].startswith("-") or "=" in args[0]:
        cmd = [sys.executable, "-m", "dltrain"]
    elif args[0] == "python":
        cmd, args = [sys.executable], args[1:]
    else:
        cmd, args = [str(target / "bin" / args[0])], args[1:]
    done = subprocess.run([*cmd, *args], cwd=cwd, env=full, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def _png(path: Path, row: int) -> Path:
    from PIL import Image

    pixels = np.zeros((8, 8), dtype=np.uint8)
    pixels[row : row + 2, :] = 250
    Image.fromarray(pixels).save(path)
    return path


def _train_resume_sweep_eval_predict(
    target: Path, cwd: Path, args: list[str], search: list[str], metric: str
) -> dict:
    """The Done-when sequence: train, resume one epoch further, a 3-trial sweep, dl-eval
    and dl-predict on the checkpoints. Returns the first run's results."""
    run_dir = cwd / "outputs" / "run"
    _run(target, [*args, f"hydra.run.dir={run_dir}", "trainer.max_epochs=1"], cwd)
    hydra = (run_dir / ".hydra" / "hydra.yaml").read_text()
    assert f"path: {target / 'dltrain' / 'configs'}\n" in hydra  # the installed package's
    assert str(ROOT / "configs") not in hydra
    resumed = _run(target, [*args, f"hydra.run.dir={run_dir}", "trainer.max_epochs=2"], cwd)
    assert f"resuming from {run_dir / 'checkpoints' / 'last.ckpt'}" in resumed.stdout
    first = _results(run_dir)
    assert first["status"] == "completed" and first["epochs"] == 2

    sweep = _run(target, ["-m", *args, *search, "trainer.max_epochs=1"], cwd)
    (summary,) = (cwd / "outputs").rglob("sweep_summary.json")
    trials = json.loads(summary.read_text())["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE"] * 3, sweep.stdout[-2000:]
    for trial in trials:  # each trial returned the metric it logged
        assert trial["value"] == pytest.approx(_results(Path(trial["run_dir"]))["metrics"][metric])

    best = first["best_checkpoint"]
    _run(target, ["dl-eval", f"ckpt_path={best}", "hydra.run.dir=outputs/eval"], cwd)
    evaluated = _results(cwd / "outputs" / "eval")["metrics"]
    assert evaluated["test/acc"] == pytest.approx(first["metrics"]["test/acc"])
    image = _png(cwd / "row2.png", 2)
    predict = ["dl-predict", f"ckpt_path={best}", f"inputs={image}", "hydra.run.dir=outputs/p"]
    _run(target, predict, cwd)
    predicted = json.loads((cwd / "outputs" / "p" / "predictions.json").read_text())
    probs = [t["prob"] for t in predicted["predictions"][0]["top"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6
    return first


def test_the_wheel_trains_the_built_in_digits_from_any_folder(installed: Path, tmp_path: Path):
    args = ["data=digits", "trainer.limit_train_batches=3", "callbacks.plots=null"]
    search = ["hparams_search=digits_optuna", "hydra.sweeper.n_trials=3"]
    first = _train_resume_sweep_eval_predict(installed, tmp_path, args, search, "val/acc_best")
    assert first["metrics"]["test/acc"] > 0.3  # 2 short epochs on 10 classes: well above 0.1


# ---- a user's project folder: own net, data module, LightningModule, experiment ----------

USER_FILES = {
    "mynet.py": '''
from torch import nn


class MyNet(nn.Module):
    def __init__(self, in_shape, num_classes, width=16):
        super().__init__()
        size = 1
        for s in in_shape:
            size *= s
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(size, width), nn.ReLU(), nn.Linear(width, num_classes)
        )

    def forward(self, x):
        return self.body(x)
''',
    # In src/, to show that the project's src/ is importable too.
    "src/stripes_data.py": '''
import lightning.pytorch as pl
import numpy as np
import torch
import torch
from dltrain.data.loading.memory import InMemoryDataModule
from dltrain.data.loading.split import Split


class StripesData(InMemoryDataModule):
    """8x8 images in a CSV (label, 64 pixels): class k is bright in rows 2k, 2k+1."""

    def __init__(self, path, **kwargs):
        super().__init__(**kwargs)
        self.path = path

    def load(self):
        rows = np.loadtxt(self.path, delimiter=",", dtype=np.int64)
        x = torch.as_tensor(rows[:, 1:], dtype=torch.uint8).view(-1, 1, 8, 8)
        y = torch.as_tensor(rows[:, 0])
        return Split(x[:60], y[:60]), Split(x[60:], y[60:])
''',
    "mymodule.py": '''
import lightning.pytorch as pl
import torch.nn.functional as F


class MyModule(pl.LightningModule):
    """Not the Classifier: its own loss, metric names and optimizer set-up."""

    def __init__(self, net, optimizer, label_smoothing=0.0):
        super().__init__()
        self.net = net
        self.make_optimizer = optimizer
        self.label_smoothing = label_smoothing

    def _loss(self, batch):
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        return loss, (logits.argmax(-1) == y).float().mean()

    def training_step(self, batch, batch_idx):
        loss, _ = self._loss(batch)
        self.log("train/smooth_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._loss(batch)
        self.log("val/smooth_loss", loss)
        self.log("val/hits", acc)

    def test_step(self, batch, batch_idx):
        _, acc = self._loss(batch)
        self.log("test/acc", acc)

    def configure_optimizers(self):
        return self.make_optimizer(params=self.parameters())
''',
    "configs/model/mynet.yaml": """
_target_: mynet.MyNet
in_shape: ${data.shape}
num_classes: ${data.num_classes}
width: 16
""",
    "configs/data/stripes.yaml": """
_target_: stripes_data.StripesData
path: stripes.csv
shape: [1, 8, 8]
num_classes: 4
batch_size: 16
val_fraction: 0.25
seed: ${seed}
""",
    "configs/module/mymodule.yaml": """
_target_: mymodule.MyModule
label_smoothing: 0.1
""",
    # A built-in option's name: the project's replaces it.
    "configs/optimizer/adam.yaml": """
_target_: torch.optim.Adam
_partial_: true
lr: 0.02
""",
    "configs/experiment/stripes.yaml": """
# @package _global_
defaults:
  - override /data: stripes
  - override /model: mynet
  - override /module: mymodule
monitor: val/smooth_loss
monitor_mode: min
optimized_metric: val/smooth_loss
""",
    "configs/hparams_search/stripes_optuna.yaml": """
# @package _global_
defaults:
  - override /hydra/sweeper: dltrain_optuna
hydra:
  sweeper:
    direction: minimize
    n_trials: 3
    params:
      optimizer.lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
""",
}


def write_user_project(folder: Path) -> Path:
    for name, text in USER_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text.lstrip())
    rng = np.random.default_rng(0)
    rows = []
    for i in range(80):
        label = i % 4
        pixels = rng.integers(0, 40, size=(8, 8))
        pixels[2 * label : 2 * label + 2, :] = 250
        rows.append([label, *pixels.ravel()])
    np.savetxt(folder / "stripes.csv", np.array(rows), fmt="%d", delimiter=",")
    return folder


def test_the_wheel_runs_a_user_project_with_its_own_classes(installed: Path, tmp_path: Path):
    project = write_user_project(tmp_path)
    helped = _run(installed, ["--help"], project).stdout
    groups = dict(line.split(": ", 1) for line in helped.splitlines() if ": " in line)
    assert "mynet" in groups["model"].split(", ") and "stripes" in groups["data"].split(", ")
    assert "mymodule" in groups["module"].split(", ")
    args = ["experiment=stripes", "callbacks.plots=null"]
    search = ["hparams_search=stripes_optuna"]
    first = _train_resume_sweep_eval_predict(
        installed, project, args, search, "val/smooth_loss"
    )
    # The module's own metrics are the run's record; the project's adam.yaml was used.
    assert {"train/smooth_loss", "val/smooth_loss", "val/hits", "test/acc"} <= set(
        first["metrics"]
    )
    run_dir = project / "outputs" / "run"
    assert "lr: 0.02\n" in (run_dir / ".hydra" / "config.yaml").read_text()
    assert "provider: dl-train project" in (run_dir / ".hydra" / "hydra.yaml").read_text()
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)  # epoch 0-based
    assert state["dltrain_config"]["module"]["_target_"] == "mymodule.MyModule"
    assert state["epoch"] == 1 and set(state["dltrain_data"]) == {"mean", "std", "classes"}
    # Bright rows 2-3 are class 1 in this data; two epochs at lr 0.02 learn that.
    predicted = json.loads((project / "outputs" / "p" / "predictions.json").read_text())
    assert predicted["predictions"][0]["top"][0]["class"] == 1


class PairsData(pl.LightningDataModule):
    """Any LightningDataModule with (x, y) batches: no shape or num_classes arguments."""

    def __init__(self, n: int = 64) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 6, generator=gen)
        self.y = (self.x[:, 0] > 0).long()

    def _loader(self) -> torch.utils.data.DataLoader:
        pairs = torch.utils.data.TensorDataset(self.x, self.y)
        return torch.utils.data.DataLoader(pairs, batch_size=16)

    train_dataloader = val_dataloader = test_dataloader = _loader


def test_any_lightning_data_module_with_x_y_batches_trains(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    from dltrain.commands.train import fit_and_test

    overrides = [f"paths.output_dir={tmp_path}", "logger=none", "callbacks=none"]
    overrides += ["trainer.max_epochs=4", "metrics.test=[]"]
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):  # shape and num_classes for the net's interpolations only
        cfg.data = OmegaConf.create(
            {"_target_": "test_install.PairsData", "n": 48, "shape": [6], "num_classes": 2}
        )
    record = fit_and_test(cfg)
    assert record["steps"] == 12  # 48 samples, batches of 16, 4 epochs
    assert record["metrics"]["test/acc"] > 0.6  # y is the sign of x[:, 0]: learnable


def test_an_unimportable_target_is_named_before_any_data_loads(tmp_path: Path) -> None:
    """Config folders from --config-dir and DLTRAIN_CONFIG_PATH join the built-in ones;
    the user's module is not importable from here."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "model").mkdir(parents=True)
    (elsewhere / "model" / "mynet.yaml").write_text(USER_FILES["configs/model/mynet.yaml"])
    more = tmp_path / "more"
    (more / "data").mkdir(parents=True)
    (more / "data" / "stripes.yaml").write_text(USER_FILES["configs/data/stripes.yaml"])
    work = tmp_path / "work"
    work.mkdir()
    args = ["--config-dir", str(elsewhere), "model=mynet", "data=stripes"]
    r = run_cli(args, work, env={"DLTRAIN_CONFIG_PATH": str(more)})
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (
        "error: cannot import mynet.MyNet (No module named 'mynet') — run dl-train from the "
        "folder that holds mynet.py, add it to PYTHONPATH, or pip install your package"
    )
    assert not (work / "outputs").exists() or not list((work / "outputs").rglob("*.ckpt"))
    # An option with a built-in name replaces the built-in one, from --config-dir too.
    (elsewhere / "optimizer").mkdir()
    adam = USER_FILES["configs/optimizer/adam.yaml"].replace("0.02", "0.07")
    (elsewhere / "optimizer" / "adam.yaml").write_text(adam)
    r = run_cli(["--config-dir", str(elsewhere), "--cfg", "job"], work)
    assert r.returncode == 0, r.stderr
    assert "  lr: 0.07\n" in r.stdout
    # A misspelled class in a module that does import: the names it has.
    (work / "mynet.py").write_text(USER_FILES["mynet.py"])
    misspelled = USER_FILES["configs/model/mynet.yaml"].replace("MyNet", "MyNett")
    (elsewhere / "model" / "mynet.yaml").write_text(misspelled)
    r = run_cli(args, work, env={"DLTRAIN_CONFIG_PATH": str(more)})
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (
        "error: cannot import mynet.MyNett (mynet has no attribute 'MyNett') — "
        "check the _target_ spelling (did you mean 'MyNet'?)"
    )


# ---- dl-init -------------------------------------------------------------------------------


def test_dl_init_writes_a_project_that_trains_tests_and_smokes(installed: Path, tmp_path: Path):
    _run(installed, ["dl-init", "my-proj"], tmp_path)
    project = tmp_path / "my-proj"
    for name in ("configs/experiment/my_proj.yaml", "src/my_proj/net.py", "data/sample.csv",
                 "tests/test_my_proj.py", "README.md", ".github/workflows/ci.yml"):  # fmt: skip
        assert (project / name).is_file(), name
    train = ["dl-train", "experiment=my_proj", "hydra.run.dir=outputs/r"]
    trained = _run(installed, train, project)
    results = _results(project / "outputs" / "r")
    # Three well-separated clusters: the test split (12 rows) is classified right.
    assert results["metrics"]["test/acc"] == 1.0, trained.stdout[-2000:]
    tested = _run(installed, ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"], project)
    assert "2 passed" in tested.stdout
    table = _run(installed, ["dl-smoke"], project).stdout.splitlines()
    assert table[-1] == "1 of 1 passed"
    assert table[-2].split()[:3] == ["my_proj", "project", "pass"]
    again = subprocess.run(
        [installed / "bin" / "dl-init", "my-proj"], cwd=tmp_path, capture_output=True, text=True
    )
    assert again.returncode == 2
    assert again.stderr.strip() == (
        "error: my-proj exists and is not an empty folder — pass a new folder: dl-init my_project"
    )
