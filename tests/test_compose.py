"""Every option of every config group composes; the CLI's help and --cfg work."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from conftest import ROOT, run_cli

CONFIGS = ROOT / "configs"
# Every config group (a folder of YAML options) except Hydra's own settings.
GROUPS = sorted(
    d.name for d in CONFIGS.iterdir() if d.is_dir() and d.name != "hydra" and any(d.glob("*.yaml"))
)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=False)


@pytest.mark.parametrize("override", [f"{g}={o}" for g in GROUPS for o in options(g)])
def test_every_option_composes(override: str) -> None:
    cfg = compose_train([override])
    # Interpolations must resolve (except Hydra's runtime paths, unset outside a run).
    for key in ("data", "model", "optimizer", "scheduler", "trainer"):
        assert cfg[key] is not None
    assert cfg.model.in_shape == cfg.data.shape


@pytest.mark.parametrize("model", options("model"))
@pytest.mark.parametrize("data", options("data"))
def test_every_model_takes_every_data_shape(model: str, data: str) -> None:
    import torch

    cfg = compose_train([f"model={model}", f"data={data}"])
    net = instantiate(cfg.model)
    x = torch.zeros(2, *cfg.data.shape)
    assert net(x).shape == (2, cfg.data.num_classes)
    assert math.prod(cfg.data.shape) > 0


def test_help_lists_groups_without_importing_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.argv = ['dl-train', '--help']\n"
        "from dltrain import cli\n"
        "try:\n    cli.train_main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', 'torch' in sys.modules, 'lightning' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "HEAVY False False" in out.stdout
    for group in GROUPS:
        assert f"{group}: {', '.join(options(group))}" in out.stdout
    assert "trainer: bf16, cpu, ddp, ddp_cpu, fsdp, gpu" in out.stdout


def test_cfg_job_prints_composed_config(tmp_path: Path) -> None:
    out = run_cli(["model=cnn", "data=mnist", "optimizer=sgd", "--cfg", "job"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "_target_: dltrain.models.cnn.CNN" in out.stdout
    assert "_target_: torch.optim.SGD" in out.stdout
    assert "_target_: dltrain.data.mnist.MNISTDataModule" in out.stdout
