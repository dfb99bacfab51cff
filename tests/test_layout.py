"""Moved modules: a checkpoint written before ``dltrain.data`` was split into
``sources``/``loading``/``storage`` names its classes by their old ``_target_`` and
still evaluates; a config naming an old module is refused with the new name; a project
made by ``dl-init`` before the split still imports its base class."""

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


def test_a_config_naming_an_old_data_module_is_refused_with_the_new_name(tmp_path: Path) -> None:
    out = run_cli(["data._target_=dltrain.data.digits.DigitsDataModule"], cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "error: dltrain.data.digits.DigitsDataModule has moved to "
        "dltrain.data.sources.digits.DigitsDataModule — write _target_: "
        "dltrain.data.sources.digits.DigitsDataModule"
    )


def test_the_old_base_class_import_of_dl_init_projects_still_works() -> None:
    from dltrain.data.loading.memory import InMemoryDataModule
    from dltrain.data.loading.split import Split
    from dltrain.data.memory import InMemoryDataModule as Old
    from dltrain.data.memory import Split as OldSplit

    assert Old is InMemoryDataModule and OldSplit is Split
