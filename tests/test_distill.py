"""module=distill teacher=<ckpt>: the student learns from a frozen teacher in eval mode,
whose weights never change and which no student checkpoint holds."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import run_cli
from test_train import CONFIGS, train_in_process

FAST = ["trainer.max_epochs=1", "logger=none", "trainer.deterministic=true"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits MLP trained for one epoch (another width than the students below)."""
    base = tmp_path_factory.mktemp("teacher")
    _, results = train_in_process(base, ["model.hidden=[64]", *FAST])
    return Path(results["best_checkpoint"])


def test_the_teacher_is_frozen_in_eval_mode_and_never_updated(
    tmp_path: Path, teacher: Path
) -> None:
    from dltrain.commands import build

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            f"paths.output_dir={tmp_path}", "module=distill", f"teacher={teacher}",
            "model.hidden=[16]", *FAST])  # fmt: skip
    dm = build.datamodule(cfg)
    module = build.module(cfg, dm)
    before = copy.deepcopy(module.teacher.state_dict())
    student_before = copy.deepcopy(module.net.state_dict())
    calls: list[tuple[bool, bool]] = []
    module.teacher.register_forward_hook(
        lambda m, args, out: calls.append((m.training, torch.is_grad_enabled()))
    )
    trainer = build.trainer(cfg, [], [], default_root_dir=str(tmp_path))
    trainer.fit(module, datamodule=dm)

    assert calls and set(calls) == {(False, False)}  # eval mode, no graph, every step
    after = module.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in module.teacher.parameters())
    taught = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert not taught & {id(p) for p in module.teacher.parameters()}
    assert not all(torch.equal(student_before[k], v) for k, v in module.net.state_dict().items())


def test_alpha_0_is_the_plain_classifier_and_checkpoints_hold_only_the_student(
    tmp_path: Path, teacher: Path
) -> None:
    student = ["model.hidden=[16]", *FAST]
    _, plain = train_in_process(tmp_path / "plain", student)
    distil = ["module=distill", f"teacher={teacher}", *student]
    _, zero = train_in_process(tmp_path / "zero", [*distil, "module.alpha=0"])
    _, soft = train_in_process(tmp_path / "soft", [*distil, "module.alpha=0.7"])
    assert zero["metrics"] == plain["metrics"]
    assert soft["metrics"]["train/loss"] != plain["metrics"]["train/loss"]
    ckpt = torch.load(soft["best_checkpoint"], weights_only=True)
    assert (
        ckpt["state_dict"].keys()
        == torch.load(plain["best_checkpoint"], weights_only=True)["state_dict"].keys()
    )
    assert ckpt["dltrain_config"]["teacher"] == str(teacher)  # named, not copied


def test_a_teacher_reading_other_inputs_is_refused(tmp_path: Path, teacher: Path) -> None:
    args = ["module=distill", f"teacher={teacher}", "data=synthetic", "data.shape=[1,6,6]",
            "data.num_classes=10", *FAST, f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    done = run_cli(args, tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: teacher {teacher} reads other inputs than the student (data shape "
        "differ), and both see the same batch — distil from a teacher trained on the "
        "same data and tokenizer as the student"
    ]


def test_distill_without_a_teacher_is_refused(tmp_path: Path) -> None:
    done = run_cli(["module=distill", *FAST, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path,
                   env={"OMP_NUM_THREADS": "1"})  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: module=distill needs a teacher — pass teacher=<run dir>/checkpoints/<file>.ckpt"
    ]
