"""A user's own LightningModule and LightningDataModule, written as Lightning's docs and
the lightning-hydra-template write them, run from their project folder (issue 23).

The module calls ``self.save_hyperparameters(logger=False)`` with its ``net`` and its
``_partial_`` optimizer and scheduler factories inside, so Lightning puts pickled
objects into every checkpoint's ``hyper_parameters``. The data module exposes
``num_classes`` as an attribute (its config has no such key) and builds its own
validation split (no ``val_fraction`` key).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

from conftest import ROOT, run_cli

PROJECT_FILES = {
    "src/own_module.py": '''
import torch
from lightning.pytorch import LightningModule
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy


class OwnLitModule(LightningModule):
    """As in the lightning-hydra-template: objects in the hyperparameters."""

    def __init__(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                 compile: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.net = net
        self.criterion = torch.nn.CrossEntropyLoss()
        self.train_acc = MulticlassAccuracy(num_classes=10, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=10, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=10, average="micro")
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.val_acc_best = MaxMetric()

    def forward(self, x):
        return self.net(x)

    def model_step(self, batch):
        x, y = batch
        logits = self.forward(x)
        return self.criterion(logits, y), logits.argmax(dim=1), y

    def on_train_start(self):
        self.val_loss.reset()
        self.val_acc.reset()
        self.val_acc_best.reset()

    def training_step(self, batch, batch_idx):
        loss, preds, targets = self.model_step(batch)
        self.train_loss(loss)
        self.train_acc(preds, targets)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, preds, targets = self.model_step(batch)
        self.val_loss(loss)
        self.val_acc(preds, targets)
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val/acc", self.val_acc, on_step=False, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self):
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True, prog_bar=True)

    def test_step(self, batch, batch_idx):
        loss, preds, targets = self.model_step(batch)
        self.test_loss(loss)
        self.test_acc(preds, targets)
        self.log("test/loss", self.test_loss, on_step=False, on_epoch=True)
        self.log("test/acc", self.test_acc, on_step=False, on_epoch=True)
        return {"preds": preds, "target": targets}  # for dl-train's confusion matrix

    def setup(self, stage):
        if self.hparams.compile and stage == "fit":
            self.net = torch.compile(self.net)

    def configure_optimizers(self):
        optimizer = self.hparams.optimizer(params=self.trainer.model.parameters())
        if self.hparams.scheduler is not None:
            scheduler = self.hparams.scheduler(optimizer=optimizer)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {
                    "scheduler": scheduler,
                    "monitor": "val/loss",
                    "interval": "epoch",
                    "frequency": 1,
                },
            }
        return {"optimizer": optimizer}
''',
    "src/own_data.py": '''
import torch
from lightning.pytorch import LightningDataModule
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset, random_split


class OwnDigits(LightningDataModule):
    """scikit-learn's 8x8 digits; its own train/val/test split (no val_fraction key)."""

    def __init__(self, batch_size: int = 64, limit: int = 600) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.data_train = self.data_val = self.data_test = None

    @property
    def num_classes(self) -> int:
        return 10

    def setup(self, stage=None):
        if self.data_train is not None:
            return
        x, y = load_digits(return_X_y=True)
        n = self.hparams.limit
        pairs = TensorDataset(
            torch.tensor(x[:n] / 16.0, dtype=torch.float32), torch.tensor(y[:n])
        )
        sizes = [n - 2 * (n // 5), n // 5, n // 5]
        self.data_train, self.data_val, self.data_test = random_split(
            pairs, sizes, generator=torch.Generator().manual_seed(42)
        )

    def train_dataloader(self):
        return DataLoader(self.data_train, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.data_val, batch_size=self.hparams.batch_size)

    def test_dataloader(self):
        return DataLoader(self.data_test, batch_size=self.hparams.batch_size)
''',
    "src/own_net.py": """
from torch import nn


class DenseNet(nn.Module):
    def __init__(self, input_size: int = 64, hidden: int = 32, output_size: int = 10):
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(input_size, hidden), nn.ReLU(), nn.Linear(hidden, output_size)
        )

    def forward(self, x):
        return self.model(x.view(x.size(0), -1))
""",
    "configs/model/own_net.yaml": """
_target_: own_net.DenseNet
input_size: 64
hidden: 32
output_size: 10
""",
    "configs/data/own_digits.yaml": """
_target_: own_data.OwnDigits
batch_size: 64
limit: 600
""",
    "configs/module/own_module.yaml": """
_target_: own_module.OwnLitModule
compile: false
""",
    "configs/experiment/own.yaml": """
# @package _global_
defaults:
  - override /data: own_digits
  - override /model: own_net
  - override /module: own_module
monitor: val/acc
monitor_mode: max
optimized_metric: val/acc_best
""",
    "configs/hparams_search/own_optuna.yaml": """
# @package _global_
defaults:
  - override /hydra/sweeper: dltrain_optuna
hydra:
  sweeper:
    direction: maximize
    study_name: own_optuna
    n_trials: 2
    sampler: {name: random, seed: 0}
    params:
      optimizer.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
""",
}


def write_project(folder: Path) -> Path:
    for name, text in PROJECT_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text.lstrip())
    return folder


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def _ok(r) -> str:
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_own_module_and_data_sweep_train_test_resume_and_evaluate(tmp_path: Path) -> None:
    """The Done-when scenario, as real processes from the project folder: a 2-trial sweep
    whose trials train and test with scheduler=plateau, a resume of one trial one epoch
    further (from its last.ckpt), and dl-eval of the resumed run's best checkpoint."""
    project = write_project(tmp_path / "project")
    run = ["experiment=own", "scheduler=plateau"]  # its mode follows the stepped val/loss
    run += ["scheduler.scheduler.patience=0"]  # as the template configures it, and quick
    _ok(run_cli(["-m", *run, "hparams_search=own_optuna", "trainer.max_epochs=1",
                 "callbacks.plots=null"], project))  # fmt: skip
    (summary,) = (project / "outputs").rglob("sweep_summary.json")
    trials = json.loads(summary.read_text())["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE"] * 2
    for trial in trials:  # each trial trained, validated and tested
        metrics = _results(Path(trial["run_dir"]))["metrics"]
        assert trial["value"] == pytest.approx(metrics["val/acc_best"])
        assert {"val/acc", "val/loss", "test/acc", "test/loss"} <= set(metrics)
    first = Path(trials[0]["run_dir"])
    ckpt = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)
    # The factories and the net are stored as the config that builds them.
    hparams = ckpt["hyper_parameters"]
    assert hparams["net"] == {"_target_": "own_net.DenseNet", "input_size": 64, "hidden": 32,
                              "output_size": 10}  # fmt: skip
    assert hparams["optimizer"]["_target_"] == "torch.optim.Adam"
    assert hparams["optimizer"]["lr"] == pytest.approx(trials[0]["params"]["optimizer.lr"])
    assert hparams["scheduler"]["_target_"] == "torch.optim.lr_scheduler.ReduceLROnPlateau"
    assert hparams["compile"] is False
    # A best checkpoint by val/acc: the run has a validation split.
    assert any(p.name.startswith("epoch") for p in (first / "checkpoints").iterdir())

    lr = f"optimizer.lr={trials[0]['params']['optimizer.lr']}"
    out = _ok(run_cli([*run, lr, "trainer.max_epochs=2", f"hydra.run.dir={first}"], project))
    assert f"resuming from {first / 'checkpoints' / 'last.ckpt'}" in out
    resumed = _results(first)
    assert resumed["status"] == "completed" and resumed["epochs"] == 2
    # The plateau scheduler ran (Lightning stops a run whose plateau metric is missing).
    plateau = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)
    assert plateau["lr_schedulers"][0]["patience"] == 0
    # Plots: the confusion matrix's class count came from the data module's attribute.
    assert (first / "plots" / "confusion_matrix.png").is_file()

    out = _ok(run_cli([f"ckpt_path={resumed['best_checkpoint']}", "hydra.run.dir=eval"],
                      project, cmd="dl-eval"))  # fmt: skip
    evaluated = _results(project / "eval")["metrics"]
    assert evaluated["test/acc"] == pytest.approx(resumed["metrics"]["test/acc"])
    assert evaluated["val/acc"] == pytest.approx(resumed["metrics"]["val/acc_best"])


# ---- in process: checkpoints of captured objects, their errors, the validation split -----


class TemplateModule(pl.LightningModule):
    """The pattern of Lightning's docs: every constructor argument, objects included,
    captured by save_hyperparameters()."""

    def __init__(self, net: torch.nn.Module, optimizer: Any, scheduler: Any = None,
                 compile: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.net = net

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self) -> Any:
        optimizer = self.hparams.optimizer(params=self.parameters())
        if self.hparams.scheduler is None:
            return optimizer
        scheduler = {"scheduler": self.hparams.scheduler(optimizer), "monitor": "val/loss"}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


class OwnSplits(pl.LightningDataModule):
    """Builds its own validation split; ``num_classes`` only as an attribute."""

    num_classes = 3

    def val_dataloader(self) -> Any:
        return []


class NoValidation(pl.LightningDataModule):
    num_classes = 3

    def train_dataloader(self) -> Any:
        return []


def _compose(tmp_path: Path, *overrides: str, data: dict | None = None) -> Any:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    base = [f"paths.output_dir={tmp_path}", "logger=none", *overrides]
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=base)
    with open_dict(cfg):
        cfg.module = OmegaConf.create({"_target_": f"{__name__}.TemplateModule"})
        if data is not None:
            cfg.data = OmegaConf.create(data)
    return cfg


def test_a_module_that_saves_its_objects_as_hyperparameters_checkpoints_plain_values(
    tmp_path: Path,
) -> None:
    from dltrain.checkpointing.checkpoint_io import SafeCheckpointIO
    from dltrain.commands import build

    cfg = _compose(tmp_path, "callbacks=none", "optimizer=sgd", "model.hidden=[8]")
    module = build.module(cfg)
    trainer = build.trainer(cfg, [], [], max_steps=1, enable_model_summary=False)
    x, y = torch.randn(8, 1, 8, 8), torch.arange(8) % 10
    trainer.fit(module, torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y)))
    path = tmp_path / "plain.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)  # no pickled objects inside
    hparams = saved["hyper_parameters"]
    assert hparams["net"]["_target_"] == "dltrain.nets.mlp.MLP"
    assert hparams["net"]["in_shape"] == [1, 8, 8] and hparams["net"]["hidden"] == [8]
    assert hparams["optimizer"]["_target_"] == "torch.optim.SGD"
    assert hparams["optimizer"]["_partial_"] is True
    assert hparams["optimizer"]["lr"] == cfg.optimizer.lr
    assert hparams["scheduler"] is None and hparams["compile"] is False
    # Lightning's load_from_checkpoint rebuilds the module: the objects are given back
    # (built from the stored config), the weights are the checkpoint's.
    from hydra.utils import instantiate

    loaded = TemplateModule.load_from_checkpoint(
        path, net=instantiate(hparams["net"]), optimizer=instantiate(hparams["optimizer"])
    )
    for name, value in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    assert loaded.hparams.compile is False

    # With no config at hand, the objects are left out rather than pickled.
    bare = tmp_path / "bare.ckpt"
    checkpoint = {"state_dict": {}, "hyper_parameters": dict(module.hparams)}
    with pytest.warns(UserWarning, match=r"hyper_parameters\['net'\]"):
        SafeCheckpointIO().save_checkpoint(checkpoint, bare)
    assert torch.load(bare, weights_only=True)["hyper_parameters"] == {
        "scheduler": None, "compile": False}  # fmt: skip


class _Opaque:
    """Any object a checkpoint should not carry."""


def test_an_error_about_a_checkpoint_says_what_is_in_it(tmp_path: Path) -> None:
    from dltrain.checkpointing.checkpoint_io import SafeCheckpointIO, load_checkpoint
    from dltrain.errors import DataError, RunError

    path = tmp_path / "objects.ckpt"
    net = torch.nn.Linear(2, 2)
    torch.save({"state_dict": net.state_dict(), "hyper_parameters": {
        "net": net, "optimizer": functools.partial(torch.optim.SGD, lr=0.1), "lr": 0.1}},
        path)  # fmt: skip
    with pytest.raises(DataError) as caught:
        load_checkpoint(path)
    assert str(caught.value) == (
        f"checkpoint {path} is not a plain-tensor checkpoint: it holds pickled objects, "
        "which weights_only loading does not run (hyper_parameters.net: "
        "torch.nn.modules.linear.Linear, hyper_parameters.optimizer: functools.partial) — "
        "dl-train reads checkpoints of plain values only (tensors, numbers, strings, lists, "
        "dicts); if you trust this file, load it with torch.load(path, weights_only=False), "
        "delete those keys and torch.save it again"
    )
    # Only a damaged file is called corrupt.
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"^checkpoint .*cut.ckpt is truncated or corrupt \("):
        load_checkpoint(cut)

    # A save that would still hold an object is refused, and the previous file stays.
    io = SafeCheckpointIO()
    last = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, last)
    with pytest.raises(RunError) as caught:
        io.save_checkpoint({"step": torch.tensor(2), "callbacks": {"Mine": _Opaque()}}, last)
    assert str(caught.value).startswith(
        f"checkpoint {last} would hold pickled objects, which weights_only loading refuses "
        f"(callbacks.Mine: {__name__}._Opaque) — "
    )
    assert io.load_checkpoint(last)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["objects.ckpt", "cut.ckpt", "last.ckpt"])  # fmt: skip


def test_the_validation_split_and_class_count_come_from_the_data_module(
    tmp_path: Path,
) -> None:
    from hydra.utils import instantiate

    from dltrain.commands import build
    from dltrain.config import combinations
    from dltrain.errors import ConfigError

    own = {"_target_": f"{__name__}.OwnSplits"}
    cfg = _compose(tmp_path, "scheduler=plateau", data=own)
    combinations.check(cfg)  # its own validation split: plateau is fine
    dm = instantiate(cfg.data)
    names = [type(c).__name__ for c in build.callbacks(cfg, False, dm)]
    assert names.count("ModelCheckpoint") == 2  # the best by val/acc, and last.ckpt
    # No num_classes in its config: the plots take the data module's at test time.
    assert build.callbacks(cfg, False, dm)[-1].num_classes is None

    cfg = _compose(tmp_path, "scheduler=plateau", data={"_target_": f"{__name__}.NoValidation"})
    with pytest.raises(ConfigError) as caught:
        combinations.check(cfg)
    assert str(caught.value) == (
        "scheduler=plateau watches val/acc, but this run has no validation split — "
        f"implement val_dataloader in {__name__}.NoValidation, or use another scheduler"
    )
    names = [type(c).__name__ for c in build.callbacks(cfg, False, instantiate(cfg.data))]
    assert names.count("ModelCheckpoint") == 1  # no best checkpoint without validation

    # The built-in data: its val_fraction, before building and after.
    cfg = _compose(tmp_path, "scheduler=plateau", "data.val_fraction=0")
    with pytest.raises(ConfigError, match="set data.val_fraction > 0 .e.g. 0.1., or use"):
        combinations.check(cfg)
    assert not build.has_validation(cfg, build.datamodule(cfg))
    cfg = _compose(tmp_path, "trainer.limit_val_batches=0", data=own)
    assert not build.has_validation(cfg, instantiate(cfg.data))


def _fit_one_step(cfg: Any, check: Any) -> Any:
    from dltrain.commands import build

    module = build.module(cfg)
    trainer = build.trainer(cfg, [check], [], max_steps=1)
    x, y = torch.randn(8, 1, 8, 8), torch.arange(8) % 10
    trainer.fit(module, torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y)))
    return trainer


def test_a_plateau_mode_that_contradicts_the_modules_metric_stops_before_training(
    tmp_path: Path,
) -> None:
    """A mode the user wrote (max) for a scheduler the module steps on val/loss, where
    that would cut the rate whenever the loss improves: refused before the first step."""
    from dltrain.commands import build
    from dltrain.errors import ConfigError

    overrides = ("callbacks=none", "scheduler=plateau", "model.hidden=[8]")
    cfg = _compose(tmp_path, *overrides, "scheduler.scheduler.mode=max")
    check = build.PlateauModeCheck.of(cfg)
    assert not check.follow
    with pytest.raises(ConfigError) as caught:
        _fit_one_step(cfg, check)
    assert str(caught.value) == (
        "the ReduceLROnPlateau scheduler watches val/loss with mode=max, but lower "
        "val/loss is better — set scheduler.scheduler.mode=min"
    )


def test_a_plateau_mode_left_to_the_monitor_follows_the_stepped_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """scheduler=plateau's mode comes from monitor=val/acc (max); the module steps it on
    val/loss, so the mode becomes min, with one note line."""
    from dltrain.commands import build

    cfg = _compose(tmp_path, "callbacks=none", "scheduler=plateau", "model.hidden=[8]")
    check = build.PlateauModeCheck.of(cfg)
    assert check.follow
    trainer = _fit_one_step(cfg, check)
    (config,) = trainer.lr_scheduler_configs
    assert (config.monitor, config.scheduler.mode) == ("val/loss", "min")
    assert config.scheduler.best == float("inf")  # min's starting point, not max's
    assert "note: the ReduceLROnPlateau scheduler is stepped on val/loss: mode=min" in (
        capsys.readouterr().out
    )
