"""Every ``_target_`` of the composed config checked against its class's signature.

The class (or function) a node names says what it accepts: its parameters, their
defaults and type annotations. pydantic validates each value against the annotation
(strict, in JSON mode: a config holds plain data, so a YAML list is a tuple's value and
``maybe`` is not a bool), so this module only reads signatures, walks the config and
words the first failure as one ``error:`` line. Nothing here copies a signature: a new
Trainer argument, a user's own net or a new built-in class is checked the day it exists.

What the config may leave unset follows how Hydra builds the node: a ``_partial_`` node
leaves its required arguments to the call, a node under a ``_recursive_: false`` parent
is built by that parent (``instantiate(node, x=...)``) and may leave any, and ``???`` is
refused wherever Hydra would fail on it, or silently drop it for the class's default.
Strict types have one exception: a number given for a ``str`` parameter
(``logger.wandb.group=2024``, an int to Hydra's parser) is accepted and written into the
config as its text, as OmegaConf does for a ``str`` field.

Value ranges travel with the annotation: the built-in classes write them into their
signatures (``heads: Annotated[int, Ge(1)]``); third-party classes (torch's optimizers,
Lightning's Trainer) get theirs from ``limits.py``.

Reading a signature imports the class's module, so a rejected model costs a torch
import (a second or two), a rejected trainer or data module a Lightning import. Nodes
are checked in ``ORDER`` so the cheaper modules come first.
"""

from __future__ import annotations

import enum
import functools
import inspect
import json
import re
import types
import typing
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Union

from omegaconf import DictConfig, OmegaConf

from dltrain.config import run_options, targets
from dltrain.config.signature_reading import (
    Param,
    Signature,
    _Sentinel,
    read_signature,
    signature_of,
)
from dltrain.config.type_words import _bounds, _num, describe, literal_values, show
from dltrain.errors import ConfigError, did_you_mean

#: Keys of Hydra's instantiate, allowed on every node.
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
#: Top-level groups in the order their targets are checked (cheapest import first);
#: other groups follow in config order.
ORDER = ("model", "optimizer", "scheduler", "data", "trainer", "callbacks", "logger")


#: A value that could not be resolved here (``${hydra:...}`` outside a Hydra run).
UNKNOWN = _Sentinel("UNKNOWN")
#: A mandatory value left unset: ``???`` itself, or an interpolation that reaches one.
MISSING, MISSING_VIA = _Sentinel("???"), _Sentinel("${...}=???")
ABSENT = inspect.Parameter.empty


@dataclass(frozen=True)
class Build:
    """How Hydra builds a node, which decides what its config may leave unset."""

    partial: bool = False  # _partial_: true: required arguments (and their ???) go to the call
    positional: bool = False  # _args_: a required argument may be given positionally
    deferred: bool = False  # under _recursive_: false: its parent builds it, with its own args
    given: Collection[str] = ()  # arguments the runner passes itself
    top_level: bool = False  # the run options: a declared key may be absent


# ---- walking the config ------------------------------------------------------------------


def check(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` for the first node whose keys or values its class (or, for
    the nodes without a ``_target_``, its declaration in ``run_options.py``) refuses."""
    check_declared(cfg)
    check_targets(cfg)


def check_declared(cfg: DictConfig) -> None:
    """The nodes without a ``_target_`` (top-level settings, ``scheduler.interval``)."""
    for path, declared in run_options.NODES.items():
        node = cfg if not path else cfg.get(path)
        if OmegaConf.is_dict(node):
            sig = read_signature(declared, "")
            check_values(node, sig, path, declared.__name__, Build(top_level=not path))


def check_targets(
    cfg: DictConfig, groups: Collection[str] | None = None, skip: Collection[str] = ()
) -> None:
    """Every ``_target_`` node under the top-level ``groups`` (all when None) but ``skip``."""
    for path, node, deferred in target_nodes(cfg):
        group = path.split(".", 1)[0]
        if (groups is None or group in groups) and group not in skip:
            # What the runner adds or drops (config/targets.py): the module gets the net
            # and optimizer; a data module need not take the keys describing its data,
            # nor those of the global batch (read by the runner).
            extra = targets.DATA_DESCRIPTIVE + targets.DATA_RUNNER if path == "data" else ()
            given = targets.MODULE_GIVEN if path == "module" else ()
            check_node(node, path, extra, given, deferred)


def target_nodes(cfg: DictConfig) -> Iterator[tuple[str, DictConfig, bool]]:
    """``(dotted path, node, deferred)`` of every node with a ``_target_``, in ``ORDER``;
    ``deferred``: a ``_recursive_: false`` node above it builds it (see ``Build``)."""
    rank = {g: i for i, g in enumerate(ORDER)}
    groups = sorted(cfg.keys(), key=lambda g: rank.get(str(g), len(ORDER)))
    for group in groups:
        yield from _walk(cfg, str(group))


def _walk(
    parent: Any, key: str | int, prefix: str = "", deferred: bool = False
) -> Iterator[tuple[str, DictConfig, bool]]:
    try:
        node = parent._get_node(key)
    except Exception:  # noqa: BLE001 - a key that cannot be read is left to Hydra
        return
    path = f"{prefix}{key}"
    if OmegaConf.is_dict(node):
        if "_target_" in node:
            yield path, node, deferred
            deferred = deferred or node.get("_recursive_", True) is False
        for k in node.keys():
            yield from _walk(node, str(k), f"{path}.", deferred)
    elif OmegaConf.is_list(node):
        for i in range(len(node)):
            yield from _walk(node, i, f"{path}.", deferred)


def check_node(
    node: DictConfig,
    path: str,
    extra: Collection[str] = (),
    given: Collection[str] = (),
    deferred: bool = False,
) -> None:
    """Check one ``_target_`` node (``path``: its dotted place in the config). ``extra``:
    keys allowed besides the arguments; ``given``: arguments the runner passes itself;
    ``deferred``: the node's builder is a ``_recursive_: false`` parent."""
    target = str(node["_target_"])
    sig = signature_of(target)
    if sig is None:
        return  # no readable signature (a builtin such as datetime.timedelta)
    how = Build(node.get("_partial_", False) is True, "_args_" in node, deferred, given)
    check_values(node, sig, path, target, how, extra=extra)


def check_values(
    node: DictConfig,
    sig: Signature,
    path: str,
    owner: str,
    how: Build = Build(),
    extra: Collection[str] = (),
) -> None:
    """Unknown keys, unset arguments, then each value against its annotation (a number
    for a ``str`` is written back as its text). At the top level (``how.top_level``) only
    the declared keys are looked at (the rest are groups)."""
    prefix = f"{path}." if path else ""
    keys = [str(k) for k in node.keys() if str(k) not in HYDRA_KEYS]
    keys = [k for k in keys if k not in extra or k in sig.params]
    if how.top_level:
        keys = [k for k in keys if k in sig.params]
    values = {k: _value(node, k) for k in keys}
    for key in values:
        if key not in sig.params and not sig.open:
            raise ConfigError(
                f"unknown key '{prefix}{key}' for {owner}{did_you_mean(key, sig.params)}",
                f"remove it; known keys: {', '.join(sig.params)}",
            )
    for name, param in sig.params.items():
        value = values.get(name, ABSENT)
        source = f"{prefix}{name}" if value is ABSENT else _source(node, name, f"{prefix}{name}")
        if value is ABSENT or value is MISSING or value is MISSING_VIA:
            _check_unset(value, param, source, owner, how)
        elif value is not UNKNOWN and not _holds_target(value):  # nested: its own node
            text = check_value(source, value, param)
            if text is not value:
                node[name] = text


def _check_unset(value: Any, param: Param, path: str, owner: str, how: Build) -> None:
    """Refuse an argument left unset (``ABSENT``, ``???``) where Hydra's build needs it."""
    if how.deferred or param.name in how.given:
        return  # the parent's instantiate(node, x=...) or the runner fills it
    required = param.default is inspect.Parameter.empty
    if value is ABSENT:
        if required and not (how.partial or how.positional or how.top_level):
            raise _missing(path, owner, in_config=False)
    elif value is MISSING_VIA or not (how.partial and required):  # a partial's call fills it
        if required:
            raise _missing(path, owner, in_config=True)
        raise ConfigError(f"{path} is not set (??? in the config)",
                          f"add {path}=<value> to the command")  # fmt: skip


def _value(node: DictConfig, key: str) -> Any:
    from omegaconf.errors import InterpolationToMissingValueError

    try:
        if OmegaConf.is_missing(node, key):
            return MISSING
        value = node[key]
        if OmegaConf.is_config(value):
            return OmegaConf.to_container(value, resolve=True, throw_on_missing=False)
        return value
    except InterpolationToMissingValueError:
        return MISSING_VIA
    except Exception:  # noqa: BLE001 - unresolvable here: checked when Hydra resolves it
        return UNKNOWN


def _source(node: DictConfig, key: str, path: str) -> str:
    """The key a user sets for this value: ``data.shape`` for ``in_shape: ${data.shape}``."""
    if OmegaConf.is_interpolation(node, key):
        m = re.fullmatch(r"\$\{([\w.]+)\}", str(node._get_node(key)._value()))
        if m:
            return m.group(1)
    return path


def _holds_target(value: Any) -> bool:
    if isinstance(value, dict):
        return "_target_" in value or any(_holds_target(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_target(v) for v in value)
    return False


def _missing(path: str, target: str, in_config: bool) -> ConfigError:
    plus = "" if in_config else "+"
    return ConfigError(
        f"{path} is not set: {target} needs it", f"add {plus}{path}=<value> to the command"
    )


# ---- values ------------------------------------------------------------------------------


def check_value(path: str, value: Any, param: Param) -> Any:
    """Validate ``value`` against the parameter's annotation (pydantic, strict JSON mode);
    the value to build with: ``value``, or a copy whose numbers in ``str`` places are
    text (what ``group=2024`` means)."""
    import pydantic

    if param.annotation is Any:
        return value
    try:
        text = json.dumps(value, allow_nan=True)
        adapter = _adapter(param.annotation)
    except (TypeError, ValueError):  # not plain data: nothing a config could be checked for
        return value
    except pydantic.PydanticUserError:  # an annotation pydantic cannot read
        return value
    try:
        adapter.validate_json(text, strict=True)
        return value
    except pydantic.ValidationError as ex:
        errors = ex.errors()
    try:
        return _as_text(value, _adapter(param.annotation, lax_text=True).validate_json(text))
    except pydantic.ValidationError:
        raise _describe_failure(path, value, param, errors) from None


@functools.lru_cache(maxsize=512)
def _adapter(tp: Any, lax_text: bool = False) -> Any:
    from pydantic import ConfigDict, TypeAdapter

    config = ConfigDict(arbitrary_types_allowed=True, strict=True)
    return TypeAdapter(_text_takes_numbers(tp) if lax_text else tp, config=config)


def _number_text(value: Any) -> Any:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return str(value) if number else value


def _text_takes_numbers(tp: Any) -> Any:
    """``tp`` with each ``str`` in it also taking a number, as its text."""
    from pydantic import BeforeValidator

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is str:
        return Annotated[str, BeforeValidator(_number_text)]
    if origin is Annotated:
        return Annotated[(_text_takes_numbers(args[0]), *tp.__metadata__)]
    if origin in (Union, types.UnionType):
        return Union[tuple(_text_takes_numbers(a) for a in args)]  # noqa: UP007
    if origin in (list, tuple, dict):
        return origin[tuple(a if a is Ellipsis else _text_takes_numbers(a) for a in args)]
    return tp


def _as_text(value: Any, valid: Any) -> Any:
    """``value`` with the numbers that ``valid`` (its validated copy) holds as text
    replaced by that text; everything else as the config wrote it."""
    if isinstance(valid, str) and not isinstance(value, str):
        return valid
    if isinstance(value, list) and isinstance(valid, (list, tuple)):
        return [_as_text(v, w) for v, w in zip(value, valid, strict=True)]
    if isinstance(value, dict) and isinstance(valid, dict):
        return {k: _as_text(v, valid.get(k)) for k, v in value.items()}
    return value


RANGE_ERRORS = {
    "greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<=",
}  # fmt: skip


def _describe_failure(path: str, value: Any, param: Param, errors: list[Any]) -> ConfigError:
    shown = f"{path}={show(value)}"
    ranges = [e for e in errors if e["type"] in RANGE_ERRORS]
    if ranges:
        err = ranges[0]
        bounds = _bounds(param.annotation) or [
            f"{RANGE_ERRORS[err['type']]} {_num(v)}" for v in err["ctx"].values()
        ]
        must = " and ".join(bounds)
        if any(isinstance(i, int) for i in err["loc"]):  # an item of a list
            return ConfigError(
                f"{shown} has {show(err['input'])}: each item must be {must}",
                f"set every item of {path} to a value {must}",
            )
        fix = _example(path, param, otherwise=f"set {path} to a value {must}")
        return ConfigError(f"{shown} is out of range: it must be {must}", fix)
    short = [e for e in errors if e["type"] == "too_short"]
    if short:
        need = short[0]["ctx"]["min_length"]
        return ConfigError(f"{shown} needs at least {need} item(s)", _example(path, param))
    allowed = literal_values(param.annotation)
    if allowed is not None:
        names = list(dict.fromkeys(show(v) if not isinstance(v, str) else v for v in allowed))
        return ConfigError(
            f"{shown} is not one of the allowed values{did_you_mean(str(value), names)}",
            f"use one of: {', '.join(names)}",
        )
    return ConfigError(f"{shown} is not {describe(param.annotation)}", _example(path, param))


def _example(path: str, param: Param, otherwise: str | None = None) -> str:
    """``e.g. path=<default>`` when the class has a usable default, else a plain hint."""
    default = param.default
    if default not in (inspect.Parameter.empty, None):
        try:
            _adapter(param.annotation).validate_json(json.dumps(_plain(default)), strict=True)
            return f"e.g. {path}={show(_plain(default))}"
        except Exception:  # noqa: BLE001 - a default the config could not write
            pass
    return otherwise or f"set {path} to {describe(param.annotation)}"


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value
