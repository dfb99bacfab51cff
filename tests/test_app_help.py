"""``--help`` is answered by config/app_help.py, not by Hydra's own (slow) help: the text
must be Hydra's, word for word, for every command, with overrides and with a user's
config folder; any other flag still goes to Hydra."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

#: Hydra's own --help: the command's hydra.main function called without dl-train's CLI
#: wrapper (the wrapper is what answers --help itself).
HYDRA_HELP = """
import sys
from dltrain.commands import cli
sys.argv = [sys.argv[1], "--help", *sys.argv[3:]]
getattr(cli, sys.argv[0].replace("dl-", "_"))()
"""


def hydra_help(command: str, args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", HYDRA_HELP, command, "--", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def project(root: Path) -> Path:
    """A user's config folder with a model of its own and an experiment."""
    configs = root / "my_configs"
    (configs / "model").mkdir(parents=True)
    (configs / "model" / "tiny.yaml").write_text(
        "_target_: dltrain.nets.mlp.MLP\nin_shape: ${data.shape}\n"
        "num_classes: ${data.num_classes}\nhidden: [8]\n"
    )
    (configs / "experiment").mkdir()
    (configs / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: tiny\n"
    )
    return configs


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("dl-train", []),
        ("dl-train", ["model=cnn", "data=mnist", "trainer.max_epochs=3"]),
        ("dl-eval", []),
        ("dl-predict", ["-h"]),
        ("dl-export", []),
    ],
)
def test_help_is_hydras_text(tmp_path: Path, command: str, args: list[str]) -> None:
    ours = run_cli(["--help", *args], tmp_path, cmd=command)
    assert ours.returncode == 0, ours.stderr
    theirs = hydra_help(command, [a for a in args if a != "-h"], tmp_path, {})
    assert ours.stdout == theirs
    assert "== Configuration groups ==" in ours.stdout


def test_help_lists_a_users_config_folder_as_hydra_does(tmp_path: Path) -> None:
    configs = project(tmp_path)
    ours = run_cli(["--config-dir", str(configs), "--help", "experiment=mine"], tmp_path)
    assert ours.returncode == 0, ours.stderr
    env = {"DLTRAIN_CONFIG_PATH": str(configs.resolve())}  # what --config-dir becomes
    assert ours.stdout == hydra_help("dl-train", ["experiment=mine"], tmp_path, env)
    groups = ours.stdout.split("== Config ==")[0]
    assert "mine" in groups and "tiny" in groups
    assert "hidden:\n  - 8" in ours.stdout  # the composed config uses the user's model


def test_other_flags_still_go_to_hydra(tmp_path: Path) -> None:
    resolved = run_cli(["--help", "--resolve"], tmp_path)
    assert resolved.returncode == 0, resolved.stderr
    assert "in_shape:\n  - 1\n  - 8\n  - 8" in resolved.stdout  # resolved by Hydra
    plain = run_cli(["--help"], tmp_path)
    assert "in_shape: ${data.shape}" in plain.stdout


def test_a_bad_override_with_help_is_one_error_line(tmp_path: Path) -> None:
    done = run_cli(["--help", "model=nope"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
