"""``data.global_batch_size``: one global batch on any hardware profile (per-device batch
and gradient accumulation derived from the world size), refused when it cannot divide;
the scaled recipes state the global batch they were tuned for, and a multi-process
profile that changes it warns (config/global_batch.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

RECIPES = {"cifar10_resnet18": 128, "rt_polarity_minilm": 32, "rt_polarity_textcnn": 50,
           "mnist_speed": 128}  # fmt: skip


def _compose(*overrides: str, hydra: bool = False):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(config_name="train", overrides=["paths.output_dir=.", *overrides],
                       return_hydra_config=hydra)  # fmt: skip


@pytest.mark.parametrize(
    "global_batch,processes,cap,per_device,steps",
    [
        (128, 1, 128, 128, 1),
        (128, 2, 128, 64, 1),
        (128, 8, 128, 16, 1),
        (1024, 1, 128, 128, 8),  # accumulation where one device cannot hold the batch
        (1024, 2, 128, 128, 4),
        (1024, 8, 64, 64, 2),
        (96, 8, 5, 4, 3),  # 12 a process: the smallest accumulation within the cap
        (256, 2, None, 128, 1),  # batch_size=null: no cap
    ],
)
def test_global_batch_divides_into_per_device_batch_and_accumulation(
    global_batch: int, processes: int, cap: int | None, per_device: int, steps: int
) -> None:
    from dltrain.config.global_batch import split

    out = split(global_batch, processes, cap)
    assert (out.per_device, out.accumulation) == (per_device, steps)
    assert out.processes * out.per_device * out.accumulation == global_batch


def test_the_line_says_how_the_global_batch_divides() -> None:
    from dltrain.config.global_batch import split

    assert split(128, 2, 128).line() == (
        "global batch 128 = 2 processes x 64 per device x 1 accumulation step"
    )
    assert split(1024, 1, 128).line() == (
        "global batch 1024 = 1 process x 128 per device x 8 accumulation steps"
    )


@pytest.mark.parametrize(
    "overrides,per_device,steps",
    [
        (["trainer=cpu"], 64, 2),  # data=digits caps the per-device batch at 64
        (["trainer=ddp_cpu"], 64, 1),
        (["trainer=ddp_cpu", "trainer.devices=8"], 16, 1),
        (["trainer=ddp_cpu", "trainer.devices=8", "data.batch_size=8"], 8, 2),
        (["trainer=ddp_cpu", "trainer.num_nodes=4"], 16, 1),  # 2 devices x 4 nodes
        (["trainer=cpu", "trainer.devices=auto", "trainer.num_nodes=2"], 64, 1),
    ],
)
def test_the_world_size_comes_from_the_hardware_profile(
    overrides: list[str], per_device: int, steps: int
) -> None:
    from dltrain.config.global_batch import plan

    out = plan(_compose("data=digits", "data.global_batch_size=128", *overrides))
    assert (out.per_device, out.accumulation) == (per_device, steps)


def test_all_visible_gpus_are_counted_as_lightning_counts_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``trainer=ddp`` (devices=-1): one process per visible GPU, on each node."""
    from lightning.pytorch.accelerators import CUDAAccelerator

    from dltrain.config.global_batch import plan

    monkeypatch.setattr(CUDAAccelerator, "parse_devices", staticmethod(lambda d: [0, 1, 2, 3]))
    cfg = _compose("trainer=ddp", "trainer.num_nodes=2", "data=digits",
                   "data.global_batch_size=256")  # fmt: skip
    out = plan(cfg)
    assert (out.processes, out.per_device, out.accumulation) == (8, 32, 1)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["trainer=ddp_cpu", "trainer.devices=8", "data.global_batch_size=100"],
            "data.global_batch_size=100 does not divide evenly over 8 processes (12.5 samples "
            "per process) — use a multiple of 8, e.g. data.global_batch_size=96 or 104, or "
            "change trainer.devices/trainer.num_nodes",
        ),
        (
            ["data.global_batch_size=128", "trainer.accumulate_grad_batches=4"],
            "data.global_batch_size=128 and trainer.accumulate_grad_batches=4 are both set: "
            "the global batch decides the accumulation — drop trainer.accumulate_grad_batches "
            "(data.batch_size caps the per-device batch), or drop data.global_batch_size",
        ),
        (
            ["data.global_batch_size=0"],
            "data.global_batch_size=0 is out of range: it must be >= 1 — set "
            "data.global_batch_size to a value >= 1",
        ),
    ],
)
def test_a_global_batch_that_cannot_be_right_is_refused_before_the_run(
    overrides: list[str], message: str
) -> None:
    from dltrain.config.checks import validate_run
    from dltrain.errors import ConfigError

    with pytest.raises(ConfigError) as ex:
        validate_run(_compose("data=digits", *overrides))
    assert str(ex.value) == message


def test_a_profile_that_changes_a_recipes_tuned_global_batch_warns() -> None:
    from dltrain.config.global_batch import settle

    cfg = _compose("experiment=cifar10_resnet18", "trainer=ddp_cpu", "trainer.devices=8",
                   hydra=True)  # fmt: skip
    assert settle(cfg) == (None, (
        "warning: experiment=cifar10_resnet18 was tuned for a global batch of 128, but "
        "trainer=ddp_cpu trains with 1024 = 8 processes x 128 per device x 1 accumulation "
        "step — set data.global_batch_size=128 to keep it"
    ))  # fmt: skip
    quiet = (
        ["trainer=cpu"],  # the recipe as tuned
        ["trainer=cpu", "data.batch_size=256"],  # one process: the user's own choice
        ["trainer=ddp_cpu", "trainer.devices=8", "data.batch_size=16"],  # 8 x 16 = 128
        ["trainer=ddp_cpu", "trainer.devices=8", "data.global_batch_size=128"],
    )
    for overrides in quiet:
        _, line = settle(_compose("experiment=cifar10_resnet18", *overrides, hydra=True))
        assert line is None or not line.startswith("warning:"), (overrides, line)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_the_scaled_recipes_state_the_global_batch_they_were_tuned_for(recipe: str) -> None:
    from dltrain.config import signatures
    from dltrain.config.global_batch import plan

    tuned = RECIPES[recipe]
    cfg = _compose(f"experiment={recipe}", "trainer=ddp_cpu", f"data.global_batch_size={tuned}")
    assert cfg.data.tuned_global_batch == tuned == cfg.data.batch_size  # tuned on one process
    signatures.check_targets(cfg, groups=("data",))  # the data module's keys pass
    out = plan(cfg)
    assert (out.per_device, out.accumulation) == (tuned // 2, 1)


def test_the_data_module_gets_the_per_device_batch_and_never_the_global_keys() -> None:
    from dltrain.commands import build

    cfg = _compose("data=digits", "data.global_batch_size=64", "+data.tuned_global_batch=64")
    dm = build.datamodule(cfg, batch_size=16)
    dm.setup("fit")
    assert len(next(iter(dm.train_dataloader()))[0]) == 16
    stored = build.stored_arguments(cfg)["datamodule_hyper_parameters"]
    assert stored["batch_size"] == 64 and "global_batch_size" not in stored


def test_a_ddp_run_trains_with_the_global_batch(tmp_path: Path) -> None:
    """Two gloo processes, global batch 24 with at most 5 a device: 12 a process, in
    3 steps of 4. 300 samples a rank = 75 batches of 4 = 25 optimizer steps (75 without
    the accumulation, 20 with batches of 5)."""
    args = ["trainer=ddp_cpu", "data=synthetic", "data.shape=[1,4,4]", "data.num_classes=3",
            "data.num_train=600", "data.num_test=50", "data.val_fraction=0",
            "data.batch_size=5", "data.global_batch_size=24", "model.hidden=[8]",
            "trainer.max_epochs=1", "logger=none", f"hydra.run.dir={tmp_path}/run"]  # fmt: skip
    out = run_cli(args, cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    line = "global batch 24 = 2 processes x 4 per device x 3 accumulation steps"
    assert out.stdout.count(line) == 1, out.stdout[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert (results["steps"], results["train_samples"]) == (25, 600)
