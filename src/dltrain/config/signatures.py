"""Every ``_target_`` of the composed config checked against its class's signature.

The class (or function) a node names says what it accepts: its parameters, their
defaults and type annotations. pydantic validates each value against the annotation
(strict, in JSON mode: a config holds plain data, so a YAML list is a tuple's value and
``maybe`` is not a bool), so this module only reads signatures, walks the config and
words the first failure as one ``error:`` line. Nothing here copies a signature: a new
Trainer argument, a user's own net or a new built-in class is checked the day it exists.

Value ranges travel with the annotation: the built-in classes write them into their
signatures (``heads: Annotated[int, Ge(1)]``); third-party classes (torch's optimizers,
Lightning's Trainer) get theirs from ``limits.py``.

Reading a signature imports the class's module, so a rejected model costs a torch
import (a second or two), a rejected trainer or data module a Lightning import. Nodes
are checked in ``ORDER`` so the cheaper modules come first.
"""

from __future__ import annotations

import collections.abc as abc
import datetime
import enum
import functools
import inspect
import json
import os
import pathlib
import re
import types
import typing
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from omegaconf import DictConfig, OmegaConf

from dltrain.config import run_options, targets
from dltrain.config.limits import limits_of, resolved_by_recipe
from dltrain.errors import ConfigError, did_you_mean

#: Keys of Hydra's instantiate, allowed on every node.
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
#: Top-level groups in the order their targets are checked (cheapest import first);
#: other groups follow in config order.
ORDER = ("model", "optimizer", "scheduler", "data", "trainer", "callbacks", "logger")
#: An unset mandatory value (``???``) as ``to_container(throw_on_missing=False)`` leaves it.
MISSING = "???"


class _Unknown:
    """A value that could not be resolved here (``${hydra:...}`` outside a Hydra run)."""


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Param:
    name: str
    annotation: Any  # as written on the class, rewritten for config values (config_type)
    default: Any  # inspect.Parameter.empty when required


@dataclass(frozen=True)
class Signature:
    params: dict[str, Param]
    open: bool  # takes **kwargs that could not be followed: unknown keys are allowed


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
            sig = _signature(declared, "")
            check_values(node, sig, path, declared.__name__, top_level=not path)


def check_targets(
    cfg: DictConfig, groups: Collection[str] | None = None, skip: Collection[str] = ()
) -> None:
    """Every ``_target_`` node under the top-level ``groups`` (all when None) but ``skip``."""
    for path, node in target_nodes(cfg):
        group = path.split(".", 1)[0]
        if (groups is None or group in groups) and group not in skip:
            # What the runner adds or drops (config/targets.py): the module gets the net
            # and optimizer; a data module need not take the keys describing its data.
            extra = targets.DATA_DESCRIPTIVE if path == "data" else ()
            given = targets.MODULE_GIVEN if path == "module" else ()
            check_node(node, path, extra, given)


def target_nodes(cfg: DictConfig) -> Iterator[tuple[str, DictConfig]]:
    """``(dotted path, node)`` of every node with a ``_target_``, in ``ORDER``."""
    rank = {g: i for i, g in enumerate(ORDER)}
    groups = sorted(cfg.keys(), key=lambda g: rank.get(str(g), len(ORDER)))
    for group in groups:
        yield from _walk(cfg, str(group))


def _walk(parent: Any, key: str | int, prefix: str = "") -> Iterator[tuple[str, DictConfig]]:
    try:
        node = parent._get_node(key)
    except Exception:  # noqa: BLE001 - a key that cannot be read is left to Hydra
        return
    path = f"{prefix}{key}"
    if OmegaConf.is_dict(node):
        if "_target_" in node:
            yield path, node
        for k in node.keys():
            yield from _walk(node, str(k), f"{path}.")
    elif OmegaConf.is_list(node):
        for i in range(len(node)):
            yield from _walk(node, i, f"{path}.")


def check_node(
    node: DictConfig, path: str, extra: Collection[str] = (), given: Collection[str] = ()
) -> None:
    """Check one ``_target_`` node (``path``: its dotted place in the config). ``extra``:
    keys allowed besides the arguments; ``given``: arguments the runner passes itself."""
    target = str(node["_target_"])
    sig = signature_of(target)
    if sig is None:
        return  # no readable signature (a builtin such as datetime.timedelta)
    partial = bool(node.get("_partial_", False)) or "_args_" in node
    check_values(node, sig, path, target, partial=partial, extra=extra, given=given)


def check_values(
    node: DictConfig,
    sig: Signature,
    path: str,
    owner: str,
    partial: bool = False,
    top_level: bool = False,
    extra: Collection[str] = (),
    given: Collection[str] = (),
) -> None:
    """Unknown keys, unset required arguments, then each value against its annotation.
    At the ``top_level`` only the declared keys are looked at (the rest are groups)."""
    prefix = f"{path}." if path else ""
    keys = [str(k) for k in node.keys() if str(k) not in HYDRA_KEYS]
    keys = [k for k in keys if k not in extra or k in sig.params]
    if top_level:
        keys = [k for k in keys if k in sig.params]
    values = {k: _value(node, k) for k in keys}
    for key in values:
        if key not in sig.params and not sig.open:
            raise ConfigError(
                f"unknown key '{prefix}{key}' for {owner}{did_you_mean(key, sig.params)}",
                f"remove it; known keys: {', '.join(sig.params)}",
            )
    for name, param in sig.params.items():
        value = values.get(name, inspect.Parameter.empty)
        if value is inspect.Parameter.empty or value == MISSING:
            required = param.default is inspect.Parameter.empty and not partial
            required = required and name not in given
            if required and (not top_level or value == MISSING):
                raise _missing(f"{prefix}{name}", owner, in_config=name in values)
            continue
        if value is UNKNOWN or _holds_target(value):
            continue  # a nested _target_ is checked as its own node
        check_value(_source(node, name, f"{prefix}{name}"), value, param)


def _value(node: DictConfig, key: str) -> Any:
    try:
        if OmegaConf.is_missing(node, key):
            return MISSING
        value = node[key]
        if OmegaConf.is_config(value):
            return OmegaConf.to_container(value, resolve=True, throw_on_missing=False)
        return value
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


def check_value(path: str, value: Any, param: Param) -> None:
    """Validate ``value`` against the parameter's annotation (pydantic, strict JSON mode)."""
    import pydantic

    if param.annotation is Any:
        return
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):  # not plain data: nothing a config could be checked for
        return
    try:
        adapter = _adapter(param.annotation)
    except (pydantic.PydanticUserError, TypeError):  # an annotation pydantic cannot read
        return
    try:
        adapter.validate_json(text, strict=True)
    except pydantic.ValidationError as ex:
        raise _describe_failure(path, value, param, ex.errors()) from None


@functools.lru_cache(maxsize=512)
def _adapter(tp: Any) -> Any:
    from pydantic import ConfigDict, TypeAdapter

    return TypeAdapter(tp, config=ConfigDict(arbitrary_types_allowed=True))


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


def _bounds(tp: Any) -> list[str]:
    """``[">= 0", "< 1"]`` from the annotated_types constraints in an annotation."""
    words = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    out: list[str] = []
    for meta in _metadata(tp):
        for key, word in words.items():
            bound = getattr(meta, key, None)
            if bound is not None and f"{word} {_num(bound)}" not in out:
                out.append(f"{word} {_num(bound)}")
    return out


def _metadata(tp: Any) -> Iterator[Any]:
    if typing.get_origin(tp) is Annotated:
        yield from tp.__metadata__
    for arg in typing.get_args(tp):
        if not isinstance(arg, (str, int, float, bool)) and arg is not None:
            yield from _metadata(arg)


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


# ---- words for types and values ------------------------------------------------------------

NAMES = {
    bool: "true/false", int: "an integer", float: "a number", str: "a string",
    pathlib.Path: "a path", type(None): "null", dict: "a mapping",
    datetime.timedelta: "a duration",
}  # fmt: skip
PLURALS = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}
SEQUENCES = (list, tuple, set, frozenset, abc.Sequence, abc.MutableSequence, abc.Set)


def describe(tp: Any) -> str:
    """A type in the words of an error message: ``an integer or null``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return describe(args[0])
    if origin in (Union, types.UnionType):
        words = list(dict.fromkeys(describe(a) for a in args))
        if "a number" in words and "an integer" in words:
            words.remove("an integer")
        return " or ".join(words)
    if origin is Literal:
        return show(args[0]) if len(args) == 1 else "one of " + ", ".join(show(a) for a in args)
    if origin in SEQUENCES or tp in SEQUENCES:
        inner = _strip(args[0]) if args else Any
        return f"a list of {PLURALS.get(inner, 'values')}"
    if origin in (dict, abc.Mapping) or tp is abc.Mapping:
        return "a mapping"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(show(m.value) for m in tp)
    return NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _strip(tp: Any) -> Any:
    return typing.get_args(tp)[0] if typing.get_origin(tp) is Annotated else tp


def literal_values(tp: Any) -> list[Any] | None:
    """The allowed values when an annotation is only ``Literal``s (and ``None``)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return literal_values(args[0])
    if origin is Literal:
        return list(args)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return [m.value for m in tp]
    if origin in (Union, types.UnionType):
        out: list[Any] = []
        for arg in args:
            if arg is type(None):
                continue
            values = literal_values(arg)
            if values is None:
                return None
            out += [v for v in values if v not in out]
        return out
    return None


def show(value: Any) -> str:
    """A value as it is written on the command line."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(show(v) for v in value) + "]"
    if value is None:
        return "null"
    return str(value)


# ---- signatures ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def signature_of(target: str) -> Signature | None:
    """The parameters of the class or function a ``_target_`` names, with config-facing
    annotations and the limits of ``limits.py``; ``**kwargs`` followed up the MRO."""
    obj = targets.locate(target)  # an import mistake: ConfigError naming it
    return _signature(obj, target)


def _signature(obj: Any, target: str) -> Signature | None:
    params: dict[str, Param] = {}
    limits, resolved = limits_of(target), resolved_by_recipe(target)
    fn, given = obj, Forwarded(0, frozenset())
    while True:
        sig = _inspect(fn)
        if sig is None:
            return None if not params else Signature(params, open=True)
        open_ = False
        positional = given.positional
        for p in sig.parameters.values():
            if p.name == "self" or p.kind is p.VAR_POSITIONAL:
                continue
            if p.kind is p.VAR_KEYWORD:
                open_ = True
            elif positional > 0 and p.kind is not p.KEYWORD_ONLY:
                positional -= 1  # filled by the subclass's super().__init__(x, ...)
            elif p.name not in params and p.name not in given.keywords:
                tp = with_limits(config_type(p.annotation), limits.get(p.name, ()))
                if p.name in resolved and tp is not Any:
                    tp = Union[tp, Literal[resolved[p.name]]]  # noqa: UP007 - built at runtime
                params[p.name] = Param(p.name, tp, p.default)
        base = _kwargs_go_to_base(obj, fn) if open_ else None
        if base is None:
            return Signature(params, open=open_)
        fn, given = base


@dataclass(frozen=True)
class Forwarded:
    """What a ``super().__init__(..., **kwargs)`` call fills itself."""

    positional: int
    keywords: frozenset[str]


def _kwargs_go_to_base(obj: Any, fn: Any) -> tuple[Callable[..., Any], Forwarded] | None:
    """The next ``__init__`` up the MRO when ``fn`` passes its ``**kwargs`` on with
    ``super().__init__(..., **kwargs)`` (read from the source, as jsonargparse does);
    ``None`` when they go elsewhere: then unknown keys cannot be told."""
    import ast
    import textwrap

    if not isinstance(obj, type):
        return None
    init = fn.__init__ if isinstance(fn, type) else fn
    mro = obj.__mro__
    owner = next((c for c in mro if c.__dict__.get("__init__") is init), None)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
    except (OSError, TypeError, SyntaxError):
        return None
    if owner is None or not tree.body or not isinstance(tree.body[0], ast.FunctionDef):
        return None
    varkw = tree.body[0].args.kwarg
    if varkw is None:
        return None
    for call in ast.walk(tree):
        if _is_super_init(call) and any(
            k.arg is None and getattr(k.value, "id", None) == varkw.arg
            for k in call.keywords  # type: ignore[attr-defined]
        ):
            base = next(c for c in mro[mro.index(owner) + 1 :] if "__init__" in c.__dict__)
            if base is object:
                return None
            named = frozenset(k.arg for k in call.keywords if k.arg is not None)  # type: ignore[attr-defined]
            return base.__dict__["__init__"], Forwarded(len(call.args), named)  # type: ignore[attr-defined]
    return None


def _is_super_init(node: Any) -> bool:
    import ast

    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "__init__"
        and isinstance(node.func.value, ast.Call)
        and getattr(node.func.value.func, "id", None) == "super"
    )


def _inspect(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn, eval_str=True)
    except (NameError, TypeError, SyntaxError, AttributeError):  # TYPE_CHECKING-only names
        try:
            return inspect.signature(fn)  # string annotations are then read as Any
        except (TypeError, ValueError):
            return None
    except ValueError:  # builtins without a signature
        return None


class _Drop:
    """A type a config cannot hold (a Tensor, a Callback): its values come from nested
    ``_target_`` nodes, which are checked on their own."""


DROP = _Drop()
SCALARS = (bool, int, float, str, bytes, type(None), pathlib.Path, pathlib.PurePath,
           datetime.timedelta, datetime.datetime, datetime.date)  # fmt: skip
# Iterable annotations become lists: pydantic would check an Iterable's items lazily.
AS_LIST = (abc.Iterable, abc.Collection, abc.Sequence, abc.MutableSequence)


def config_type(tp: Any) -> Any:
    """The part of an annotation a config value can match: ``Union[float, Tensor]`` is
    ``float``; an annotation with no such part (``nn.Module``) is ``Any``."""
    out = _config_type(tp)
    return Any if out is DROP else out


def _config_type(tp: Any) -> Any:
    if tp is inspect.Parameter.empty or tp is Any or isinstance(tp, str):
        return Any
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        inner = _config_type(args[0])
        return inner if inner is DROP or inner is Any else Annotated[(inner, *tp.__metadata__)]
    if origin in (Union, types.UnionType):
        kept = [a for a in (_config_type(a) for a in args) if a is not DROP]
        if not kept or (kept == [type(None)] and len(args) > 1):
            return DROP  # Optional[Callback]: only a nested _target_ can set it
        return Any if Any in kept else Union[tuple(kept)]  # noqa: UP007 - built at runtime
    if origin is Literal or tp in SCALARS:
        return tp
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp
    if tp is os.PathLike or origin is os.PathLike:
        return str
    if tp in (list, tuple, dict, set) or tp in AS_LIST or tp is abc.Mapping:
        return list if tp in AS_LIST else tp
    if origin in (list, tuple, dict, set, frozenset, abc.Mapping, *AS_LIST):
        inner = [a if a is Ellipsis else _config_type(a) for a in args]
        if any(a is DROP for a in inner):
            return DROP
        return (list if origin in AS_LIST else origin)[tuple(inner)]
    return DROP


def with_limits(tp: Any, limits: tuple[Any, ...]) -> Any:
    """``tp`` with annotated_types constraints on its numeric members (a range on
    ``int | float | None`` applies to the numbers, not to ``None``)."""
    if not limits or tp is Any:
        return tp
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return Union[tuple(with_limits(a, limits) for a in args)]  # noqa: UP007
    if _strip(tp) in (int, float):
        return Annotated[(tp, *limits)]
    return tp
