"""Every option of every config group composes; the CLI's help and --cfg work."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import ROOT, run_cli

CONFIGS = ROOT / "configs"
# Every config group (a folder of YAML options) except Hydra's own settings.
GROUPS = sorted(
    d.name for d in CONFIGS.iterdir() if d.is_dir() and d.name != "hydra" and any(d.glob("*.yaml"))
)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def tensor_options(group: str) -> list[str]:
    """Models and data of tensors (they have shapes); text ones are tested in test_text,
    table ones (tabular data, table-only models) in test_tabular."""
    table_only = ("TabularDataModule", "FTTransformer")
    return [
        o
        for o in options(group)
        if "shape" in (text := (CONFIGS / group / f"{o}.yaml").read_text())
        and not any(t in text for t in table_only)
    ]


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=False)


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif node != {}:
        yield prefix, node


def package(group: str, option: str) -> str:
    """Where an option's values go: its ``# @package`` line, else its group."""
    found = re.search(r"^# @package (\S+)", (CONFIGS / group / f"{option}.yaml").read_text(), re.M)
    return found.group(1) if found else group


def written(group: str, option: str) -> dict[str, Any]:
    """What an option file sets, by dotted place in the composed config: the options of
    the same group its ``defaults`` list names first, then its own values (Hydra's
    ``_self_`` last). Hydra's own settings (``hydra.*``) are not part of the job config."""
    body = yaml.safe_load((CONFIGS / group / f"{option}.yaml").read_text()) or {}
    out: dict[str, Any] = {}
    for entry in body.pop("defaults", []):
        if isinstance(entry, str) and entry != "_self_":  # another option of this group
            out.update(written(group, entry))
    where = package(group, option)
    for path, value in _leaves(body, "" if where == "_global_" else where):
        if not path.startswith("hydra."):
            # A value replaces what a default wrote at, above or under its place.
            out = {p: v for p, v in out.items() if not _nested(p, path) and not _nested(path, p)}
            out[path] = value
    return out


def _nested(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith(f"{outer}.")


def _at(node: Any, path: str) -> Any:
    for part in path.split("."):
        node = node[part]
    return node


#: Values the user must give (``???``) where a node of the option resolves them.
MANDATORY = {"experiment=finetune_resnet_folder": ["data.num_classes=3"]}


@pytest.mark.parametrize("override", [f"{g}={o}" for g in GROUPS for o in options(g)])
def test_every_option_composes_to_what_its_file_says(override: str) -> None:
    """Each value the option's file writes is in the composed config, at the place its
    package puts it, unchanged; a group's node holds nothing else (no key left from the
    default option it replaced); the nodes it writes resolve (no interpolation names a
    key that is not there)."""
    group, option = override.split("=")
    cfg = compose_train([override, "paths.output_dir=/run", *MANDATORY.get(override, [])])
    composed = OmegaConf.to_container(cfg, resolve=False)
    values = written(group, option)
    if "paths.output_dir" in values:
        values["paths.output_dir"] = "/run"  # this test's override (Hydra sets it in a run)
    for path, value in values.items():
        assert _at(composed, path) == value, path
    if package(group, option) == group and group != "paths":  # nothing else writes there
        assert dict(_leaves(composed[group], group)) == values
    for top in {path.split(".")[0] for path in values}:
        if OmegaConf.is_config(cfg[top]):
            OmegaConf.to_container(cfg[top], resolve=True)
    if not values:  # the "none" options: the group adds nothing
        assert override in ("augment=none", "callbacks=none", "logger=none")
        assert "augment" not in cfg.data if group == "augment" else composed[group] == {}
    if "in_shape" in cfg.model and "shape" in cfg.data:
        assert cfg.model.in_shape == cfg.data.shape


MODELS, DATA = tensor_options("model"), tensor_options("data")
LAYOUT = {"images": "(C,H,W)", "sequences": "(C,L)"}


# One composition per option; a pair's config swaps both groups into one of them
# (what composing "model=m data=d" gives, at a fraction of the cost).
MODEL_CFGS = {m: compose_train([f"model={m}"]) for m in MODELS}
# Values the user must give (??? in the YAML; an unset one is refused by validate).
REQUIRED = {"image_folder": ["data.root=/nowhere", "data.num_classes=3"]}
DATA_NODES = {d: compose_train([f"data={d}", *REQUIRED.get(d, [])]).data for d in DATA}


def _kinds() -> tuple[dict[str, str], dict[str, str]]:
    """What each model option takes and what each data option gives."""
    from dltrain.config.model_data import data_kind, model_kind

    takes = {m: model_kind(str(cfg.model._target_)) for m, cfg in MODEL_CFGS.items()}
    gives = {d: data_kind(list(node.shape)) for d, node in DATA_NODES.items()}
    return takes, gives


TAKES, GIVES = _kinds()


def compose_pair(model: str, data: str):
    cfg = MODEL_CFGS[model].copy()
    cfg.data = DATA_NODES[data]
    return cfg


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("data", DATA)
def test_every_model_data_pair_is_accepted_or_refused_before_loading(model: str, data: str) -> None:
    """Compatible pairs pass validation (tests/test_models.py trains each of them);
    the others stop with one error that names the models that fit."""
    from dltrain.config.checks import validate
    from dltrain.errors import ConfigError

    cfg = compose_pair(model, data)
    assert cfg.model.in_shape == cfg.data.shape
    takes, gives = TAKES[model], GIVES[data]
    if takes in ("any", gives):
        validate(cfg)
        return
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    if gives not in LAYOUT:  # other kinds of data (e.g. text) are checked by their tests
        assert str(err.value).startswith(f"model={model} takes {takes}")
        return
    fits = [m for m in MODELS if TAKES[m] == gives] + [m for m in MODELS if TAKES[m] == "any"]
    assert str(err.value) == (
        f"model={model} takes {takes} {LAYOUT[takes]} but data={data} gives {gives} "
        f"{LAYOUT[gives]} — use model={'/'.join(fits)}"
    )


def test_incompatible_pair_error_text() -> None:
    from dltrain.config.checks import validate
    from dltrain.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        validate(compose_train(["model=cnn", "data=mnist1d"]))
    assert str(err.value) == (
        "model=cnn takes images (C,H,W) but data=mnist1d gives sequences (C,L)"
        " — use model=cnn1d/gru/lstm/transformer_seq/mlp"
    )


def test_help_lists_groups_without_importing_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.argv = ['dl-train', '--help']\n"
        "from dltrain.commands import cli\n"
        "try:\n    cli.train_main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', 'torch' in sys.modules, 'lightning' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "HEAVY False False" in out.stdout
    for group in GROUPS:
        assert f"{group}: {', '.join(options(group))}" in out.stdout
    assert "trainer: bf16, cpu, ddp, ddp_cpu, fsdp, fsdp_cpu, gpu" in out.stdout


def test_cfg_job_prints_composed_config(tmp_path: Path) -> None:
    out = run_cli(["model=cnn", "data=mnist", "optimizer=sgd", "--cfg", "job"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "_target_: dltrain.nets.cnn.CNN" in out.stdout
    assert "_target_: torch.optim.SGD" in out.stdout
    assert "_target_: dltrain.data.sources.mnist.MNISTDataModule" in out.stdout
