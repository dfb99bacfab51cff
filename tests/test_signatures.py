"""Every ``_target_`` is checked from its class's signature (config/signatures.py): the
built-in configs, every class they name, and a user's own class."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from conftest import ROOT
from dltrain.config import signature_reading, signatures
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
                     "dltrain.data.loading.augment.BatchAugment",
                     "lightning.pytorch.loggers.MLFlowLogger",
                     "dltrain.data.sources.tokenizers.WordLevelTokenizer"):  # fmt: skip
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

    assert signature_reading.config_type(eval(annotation)) == eval(config_type)


# ---- configs the check must accept, and the ??? it must not ---------------------------------
USER_CLASSES = '''
from typing import Any, Optional

import torch
from hydra.utils import instantiate


class Base:
    def __init__(self, width: int, depth: int = 2):
        self.width, self.depth = width, depth


class Sub(Base):
    """Forwards everything but its own argument to Base, positional ones included."""

    def __init__(self, *args, extra: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra = extra


class Leaf:
    """Passes its **kwargs up the MRO, where object.__init__ takes none."""

    def __init__(self, size: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.size = size


class Encoder:
    def __init__(self, in_features: int, out: int = 4):
        self.in_features, self.out = in_features, out


class Parent:
    """Builds its children itself (_recursive_: false), with what only it knows."""

    def __init__(self, encoder: Any, optimizer: Any):
        self.encoder = instantiate(encoder, in_features=3)
        self.optimizer = instantiate(optimizer, params=[torch.nn.Parameter(torch.zeros(1))])


class Named:
    def __init__(self, group: Optional[str] = None, tags: tuple[str, ...] = (), x: int = 1,
                 flag: bool = False):
        self.group, self.tags, self.x, self.flag = group, tags, x, flag
'''


@pytest.fixture(scope="module")
def sigcases(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import sys

    folder = tmp_path_factory.mktemp("sigcases")
    (folder / "sigcases.py").write_text(USER_CLASSES)
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop("sigcases", None)


def _refusal(model: dict[str, Any]) -> str | None:
    """The check's message for ``{"model": model}``, or None when it is accepted."""
    try:
        signatures.check_targets(OmegaConf.create({"model": model}))
    except ConfigError as ex:
        return str(ex)
    return None


def test_children_of_a_non_recursive_parent_may_leave_arguments_to_it(sigcases: Path) -> None:
    """Hydra passes them unbuilt; the parent fills ``in_features`` and ``params`` itself."""
    from hydra.utils import instantiate

    model = {
        "_target_": "sigcases.Parent",
        "_recursive_": False,
        "encoder": {"_target_": "sigcases.Encoder", "out": 5},
        "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1},
    }
    assert _refusal(model) is None
    built = instantiate(model)
    assert (built.encoder.in_features, built.encoder.out) == (3, 5)
    assert built.optimizer.defaults["lr"] == 0.1
    # A ??? there is the parent's to fill (instantiate(node, x=...) merges over it).
    assert _refusal({**model, "encoder": {**model["encoder"], "in_features": "???"}}) is None
    # Their keys and values are still checked.
    assert _refusal({**model, "encoder": {"_target_": "sigcases.Encoder", "out": "five"}}) == (
        "model.encoder.out='five' is not an integer — e.g. model.encoder.out=4"
    )
    assert _refusal({**model, "encoder": {"_target_": "sigcases.Encoder", "outt": 5}}) == (
        "unknown key 'model.encoder.outt' for sigcases.Encoder (did you mean 'out'?) — "
        "remove it; known keys: in_features, out"
    )
    # Without _recursive_: false Hydra builds the child first, and it lacks in_features.
    assert _refusal({**model, "_recursive_": True}) == (
        "model.encoder.in_features is not set: sigcases.Encoder needs it — add "
        "+model.encoder.in_features=<value> to the command"
    )


def test_arguments_forwarded_with_args_and_kwargs_reach_the_base_class(sigcases: Path) -> None:
    """``super().__init__(*args, **kwargs)``: the base's first parameter is still the
    config's to set; a key neither class takes is refused, with both classes' keys."""
    from hydra.utils import instantiate

    model = {"_target_": "sigcases.Sub", "width": 8, "extra": 2.0}
    assert _refusal(model) is None
    assert instantiate(model).width == 8
    assert _refusal({**model, "widht": 3}) == (
        "unknown key 'model.widht' for sigcases.Sub (did you mean 'width'?) — remove it; "
        "known keys: extra, width, depth"
    )
    assert _refusal({"_target_": "sigcases.Sub", "depth": 3}) == (
        "model.width is not set: sigcases.Sub needs it — add +model.width=<value> to the command"
    )
    assert _refusal({"_target_": "sigcases.Sub", "_args_": [8]}) is None  # given positionally
    # **kwargs that reach object.__init__ take nothing: the chain ends closed.
    assert _refusal({"_target_": "sigcases.Leaf", "sise": 2}) == (
        "unknown key 'model.sise' for sigcases.Leaf (did you mean 'size'?) — remove it; "
        "known keys: size"
    )


def test_a_number_given_for_a_string_becomes_that_text(sigcases: Path) -> None:
    """``logger.wandb.group=2024`` is an int to Hydra's parser: the check accepts it for a
    ``str`` parameter and writes the text into the config (as OmegaConf does for a str
    field), so the class gets the string it declared (W&B refuses an int group)."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["logger=wandb", "logger.wandb.group=2024"])
    signatures.check(cfg)
    assert cfg.logger.wandb.group == "2024"

    node = OmegaConf.create({"_target_": "sigcases.Named", "group": 1.5, "tags": [2024, "b"]})
    signatures.check_node(node, "model")
    assert OmegaConf.to_container(node) == {
        "_target_": "sigcases.Named", "group": "1.5", "tags": ["2024", "b"],
    }  # fmt: skip
    # Other types stay strict: a bool is no string, a text no bool or integer.
    for key, value, words in [("group", True, "a string or null"), ("flag", "maybe", "true/false"),
                              ("x", "7", "an integer")]:  # fmt: skip
        with pytest.raises(ConfigError, match=f"^model.{key}=.* is not {words} — "):
            signatures.check_node(OmegaConf.create({"_target_": "sigcases.Named", key: value}),
                                  "model")  # fmt: skip


def test_a_mandatory_value_is_refused_even_where_the_class_has_a_default(sigcases: Path) -> None:
    """Hydra fails on ``???`` when it builds the node (or, in a ``_partial_`` node, drops
    it and the default is used silently): the check names the key and how to set it."""
    message = "model.x is not set (??? in the config) — add model.x=<value> to the command"
    assert _refusal({"_target_": "sigcases.Named", "x": "???"}) == message
    assert _refusal({"_target_": "sigcases.Named", "_partial_": True, "x": "???"}) == message
    # A required argument of a _partial_ node may be left to the call.
    partial = {"_target_": "sigcases.Encoder", "_partial_": True, "in_features": "???"}
    assert _refusal(partial) is None
    # ??? reached through an interpolation names the key to set.
    sub = {"_target_": "sigcases.Sub", "width": "${width}"}
    cfg = OmegaConf.create({"width": "???", "model": sub})
    with pytest.raises(ConfigError) as info:
        signatures.check_targets(cfg)
    assert str(info.value) == (
        "width is not set: sigcases.Sub needs it — add width=<value> to the command"
    )


# ---- property: configs generated from a signature ------------------------------------------
def _leaves(tp: Any) -> list[Any] | None:
    """The plain types (and ``("literal", v)`` values) an annotation accepts; None when
    it holds anything else (lists, paths, enums): such parameters are not generated."""
    import types
    import typing

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _leaves(args[0])
    if origin in (typing.Union, types.UnionType):
        parts = [_leaves(a) for a in args]
        return None if None in parts else [leaf for part in parts for leaf in part]
    if origin is typing.Literal:
        return [("literal", a) for a in args]
    return [tp] if tp in (int, float, bool, str, type(None)) else None


def _strategy(tp: Any) -> Any:
    """Valid values of a parameter: hypothesis reads the annotation (annotated_types
    ranges included); text is kept to letters (``${`` and ``???`` mean other things)."""
    import string
    import typing

    from hypothesis import strategies as st

    leaves = _leaves(tp)
    if leaves is None:
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is str or (origin is typing.Annotated and args[0] is str):
        return st.text(alphabet=string.ascii_letters, min_size=1, max_size=8)
    if str in leaves:
        return st.one_of([_strategy(a) for a in args])
    return st.from_type(tp)


def _wrong(tp: Any) -> Any:
    """A value ``tp`` refuses, chosen from what it accepts, not by asking the check."""
    leaves = _leaves(tp) or []
    if str not in leaves:
        return "zz-not-one"  # a text where none is taken, or outside the Literal
    return True if bool not in leaves else {"k": [1]}


@functools.cache
def _generatable() -> list[str]:
    """Built-in targets with a closed signature and some parameter to generate."""
    out = []
    for target in builtin_targets():
        sig = signatures.signature_of(target)
        params = sig.params.values() if sig and not sig.open else []
        if any(_strategy(p.annotation) is not None for p in params):
            out.append(target)
    return out


def test_many_builtin_targets_have_generatable_parameters() -> None:
    assert len(_generatable()) >= 25
    assert {"torch.optim.SGD", "lightning.pytorch.Trainer", "dltrain.nets.mlp.MLP"} <= set(
        _generatable()
    )


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_generated_configs_pass_and_one_mutated_key_is_named(data: st.DataObject) -> None:
    """A node whose values hypothesis draws from the class's own annotations passes;
    renaming one key, or giving it a value of another type (or outside its Literal),
    is refused with that key in the message."""
    target = data.draw(st.sampled_from(_generatable()), label="target")
    params = signatures.signature_of(target).params
    drawable = {n: s for n, p in params.items() if (s := _strategy(p.annotation)) is not None}
    keys = data.draw(st.lists(st.sampled_from(sorted(drawable)), min_size=1, unique=True))
    node = {"_target_": target, "_partial_": True} | {k: data.draw(drawable[k], k) for k in keys}
    signatures.check_node(OmegaConf.create(node), "x")

    key = data.draw(st.sampled_from(keys), label="mutated")
    if data.draw(st.booleans(), label="rename"):
        node[f"{key}_zz"] = node.pop(key)
        named = f"unknown key 'x.{key}_zz' for {target}"
    else:
        node[key] = _wrong(params[key].annotation)
        named = f"x.{key}="
    with pytest.raises(ConfigError) as info:
        signatures.check_node(OmegaConf.create(node), "x")
    assert str(info.value).startswith(named)
