"""Moved modules: a checkpoint written before ``dltrain.data`` was split into
``sources``/``loading``/``storage`` names its classes by their old ``_target_`` and
still evaluates."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from conftest import run_cli, run_dir_of
from dltrain.checkpointing.checkpoint_io import moved_targets


def test_old_data_targets_are_renamed_and_others_left_alone() -> None:
    old = {"data": {"_target_": "dltrain.data.digits.DigitsDataModule",
                    "augment": {"_target_": "dltrain.data.augment.BatchAugment"}},
           "model": {"_target_": "dltrain.nets.mlp.MLP"},
           "callbacks": [{"_target_": "mymodule.data.digits.Mine"}]}  # fmt: skip
    new = moved_targets(old)
    assert new["data"]["_target_"] == "dltrain.data.sources.digits.DigitsDataModule"
    assert new["data"]["augment"]["_target_"] == "dltrain.data.loading.augment.BatchAugment"
    assert new["model"]["_target_"] == "dltrain.nets.mlp.MLP"
    assert new["callbacks"][0]["_target_"] == "mymodule.data.digits.Mine"


def test_a_checkpoint_naming_the_old_data_module_evaluates(tmp_path: Path) -> None:
    out = run_cli(["trainer.max_epochs=1"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    trained = json.loads((run_dir_of(tmp_path) / "results.json").read_text())
    path = Path(trained["best_checkpoint"])
    state = torch.load(path, weights_only=True)
    assert state["dltrain_config"]["data"]["_target_"].startswith("dltrain.data.sources.")
    state["dltrain_config"]["data"]["_target_"] = "dltrain.data.digits.DigitsDataModule"
    old = tmp_path / "old.ckpt"
    torch.save(state, old)

    out = run_cli([f"ckpt_path={old}"], cwd=tmp_path, cmd="dl-eval")
    assert out.returncode == 0, out.stderr
    scored = json.loads((run_dir_of(tmp_path, "eval") / "results.json").read_text())
    assert scored["metrics"]["test/acc"] == trained["metrics"]["test/acc"]
