"""Every ``_target_`` is checked from its class's signature (config/signatures.py): the
built-in configs, every class they name, and a user's own class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import ROOT
from dltrain.config import signatures
from dltrain.errors import ConfigError

CONFIGS = ROOT / "configs"
#: Targets without a signature Python can read, and why that is fine.
UNREADABLE = {"datetime.timedelta": "a C type; its keys are checked by timedelta itself"}
#: Targets taking ``**kwargs`` they pass on where the check cannot follow: their own
#: arguments are checked, other keys are let through.
OPEN = {
    "dltrain.tracking.wandb_logger.wandb_logger": "to Lightning's WandbLogger and wandb.init",
    "lightning.pytorch.loggers.TensorBoardLogger": "to TensorBoard's SummaryWriter",
    "lightning.pytorch.strategies.DDPStrategy": "to torch's DistributedDataParallel",
    "lightning.pytorch.strategies.FSDPStrategy": "to torch's FullyShardedDataParallel",
    "dltrain.checkpointing.checkpoint_io.WeightsOnlyFSDPStrategy": "FSDPStrategy's, as above",
}


def _targets(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [str(node["_target_"])] if "_target_" in node else []
        return own + [t for v in node.values() for t in _targets(v)]
    if isinstance(node, list):
        return [t for v in node for t in _targets(v)]
    return []


def builtin_targets() -> list[str]:
    """Every ``_target_`` written in any YAML file under configs/."""
    found = set()
    for path in CONFIGS.rglob("*.yaml"):
        found.update(_targets(yaml.safe_load(path.read_text())))
    return sorted(found)


def test_the_walk_finds_the_builtin_classes() -> None:
    targets = builtin_targets()
    for expected in ("dltrain.nets.mlp.MLP", "lightning.pytorch.Trainer", "torch.optim.Adam",
                     "dltrain.data.augment.BatchAugment", "lightning.pytorch.loggers.MLFlowLogger",
                     "dltrain.data.tokenizers.WordLevelTokenizer"):  # fmt: skip
        assert expected in targets
    assert len(targets) >= 40


def test_every_builtin_target_is_covered() -> None:
    """Each class has a readable signature, and a key it does not take is refused."""
    uncovered = []
    for target in builtin_targets():
        sig = signatures.signature_of(target)
        if sig is None:
            if target not in UNREADABLE:
                uncovered.append(target)
            continue
        if sig.open:
            if target not in OPEN:
                uncovered.append(f"{target} (open **kwargs)")
            continue
        node = OmegaConf.create({"_target_": target, "_partial_": True, "not_an_argument": 1})
        with pytest.raises(ConfigError, match="unknown key 'x.not_an_argument'"):
            signatures.check_node(node, "x")
    assert uncovered == []


def _options() -> list[list[str]]:
    """One override list per option of every group, plus every experiment."""
    out = []
    for group in sorted(p for p in CONFIGS.iterdir() if p.is_dir()):
        if group.name in ("hydra", "hparams_search", "paths"):
            continue
        for option in sorted(group.glob("*.yaml")):
            out.append([f"{group.name}={option.stem}"])
    return out


REQUIRED = {  # values the user must give (??? in the YAML), and text data's tokenizer
    "data=image_folder": ["data.root=/nowhere", "data.num_classes=3"],
    "data=tabular": ["data.path=/nowhere.csv", "data.target=y"],
    "experiment=finetune_resnet_folder": ["data.root=/nowhere", "data.num_classes=3"],
    "data=hf_dataset": ["model=textcnn"],
    "data=text_files": ["model=textcnn"],
    "model=textcnn": ["data=text_files"],
    "model=hf_classifier": ["data=text_files"],
}


def test_every_builtin_option_passes_the_check() -> None:
    """The shipped configs are valid against their own classes: a too strict annotation
    (or a YAML value of the wrong type) would refuse a documented command."""
    failures = []
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        for overrides in _options():
            extra = REQUIRED.get(overrides[0], [])
            cfg = compose(config_name="train", overrides=[*overrides, *extra])
            try:
                signatures.check(cfg)
            except ConfigError as ex:
                failures.append(f"{overrides[0]}: {ex}")
    assert failures == []
    assert len(_options()) >= 50


def test_a_users_own_class_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mynet.py").write_text(
        "from typing import Annotated, Literal\n"
        "from annotated_types import Ge\n"
        "class MyNet:\n"
        "    def __init__(self, width: Annotated[int, Ge(1)], norm: Literal['batch', 'layer']"
        " = 'batch', bias: bool = True):\n"
        "        pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    def error(**keys: Any) -> str:
        node = OmegaConf.create({"_target_": "mynet.MyNet", **keys})
        with pytest.raises(ConfigError) as info:
            signatures.check_node(node, "model")
        return str(info.value)

    assert error(width=8, norm="lyer") == (
        "model.norm='lyer' is not one of the allowed values (did you mean 'layer'?) — "
        "use one of: batch, layer"
    )
    assert error(width=0) == "model.width=0 is out of range: it must be >= 1 — " + (
        "set model.width to a value >= 1"
    )
    assert error(width=8, bais=False) == (
        "unknown key 'model.bais' for mynet.MyNet (did you mean 'bias'?) — remove it; known "
        "keys: width, norm, bias"
    )
    assert error(norm="layer") == (
        "model.width is not set: mynet.MyNet needs it — add +model.width=<value> to the command"
    )
    signatures.check_node(OmegaConf.create({"_target_": "mynet.MyNet", "width": 8}), "model")


@pytest.mark.parametrize(
    ("annotation", "config_type"),
    [
        ("Union[float, Tensor]", "float"),
        ("Optional[Callback]", "Any"),
        ("Sequence[int]", "list[int]"),
        ("Iterable[str]", "list[str]"),
        ("nn.Module", "Any"),
        ("Union[str, os.PathLike, None]", "Optional[str]"),
    ],
)
def test_config_types_keep_what_a_config_can_hold(annotation: str, config_type: str) -> None:
    import os  # noqa: F401 - used by eval
    from collections.abc import Iterable, Sequence  # noqa: F401
    from typing import Any, Optional, Union  # noqa: F401

    from lightning.pytorch.callbacks import Callback  # noqa: F401
    from torch import Tensor, nn  # noqa: F401

    assert signatures.config_type(eval(annotation)) == eval(config_type)
