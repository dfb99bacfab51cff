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


class _Sentinel:
    """A value that is not one: unresolvable here, or unset (``???``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: A value that could not be resolved here (``${hydra:...}`` outside a Hydra run).
UNKNOWN = _Sentinel("UNKNOWN")
#: A mandatory value left unset: ``???`` itself, or an interpolation that reaches one.
MISSING, MISSING_VIA = _Sentinel("???"), _Sentinel("${...}=???")
ABSENT = inspect.Parameter.empty
#: The default of a base-class parameter that a ``super().__init__(*xs)`` may fill.
FORWARDED = _Sentinel("FORWARDED")


@dataclass(frozen=True)
class Param:
    name: str
    annotation: Any  # as written on the class, rewritten for config values (config_type)
    default: Any  # inspect.Parameter.empty when required


@dataclass(frozen=True)
class Signature:
    params: dict[str, Param]
    open: bool  # takes **kwargs that could not be followed: unknown keys are allowed


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
            sig = _signature(declared, "")
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
    fn, given = obj, Forwarded(0, frozenset(), False)
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
                maybe_filled = given.starred and p.kind is not p.KEYWORD_ONLY
                default = FORWARDED if maybe_filled and p.default is p.empty else p.default
                params[p.name] = Param(p.name, tp, default)
        base = _kwargs_go_to_base(obj, fn) if open_ else None
        if base is None:
            return Signature(params, open=open_)
        if base is object:  # object.__init__ takes no keyword: the chain ends closed
            return Signature(params, open=False)
        fn, given = base


@dataclass(frozen=True)
class Forwarded:
    """What a ``super().__init__(..., **kwargs)`` call fills itself: its first
    ``positional`` arguments, the ``keywords`` it names, and, when ``starred``, maybe
    more positional ones (``*self.dims``: their count is not known here). The
    subclass's own ``*args`` forwarded last fill nothing: the config's ``_args_`` do."""

    positional: int
    keywords: frozenset[str]
    starred: bool


def _kwargs_go_to_base(obj: Any, fn: Any) -> tuple[Callable[..., Any], Forwarded] | type | None:
    """The next ``__init__`` up the MRO when ``fn`` passes its ``**kwargs`` on with
    ``super().__init__(..., **kwargs)`` (read from the source, as jsonargparse does);
    ``object`` when that is ``object.__init__``; ``None`` when they go elsewhere: then
    unknown keys cannot be told."""
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
    varkw, varargs = tree.body[0].args.kwarg, tree.body[0].args.vararg
    if varkw is None:
        return None
    for call in ast.walk(tree):
        if _is_super_init(call) and any(
            k.arg is None and getattr(k.value, "id", None) == varkw.arg
            for k in call.keywords  # type: ignore[attr-defined]
        ):
            base = next(c for c in mro[mro.index(owner) + 1 :] if "__init__" in c.__dict__)
            if base is object:
                return object
            named = frozenset(k.arg for k in call.keywords if k.arg is not None)  # type: ignore[attr-defined]
            return base.__dict__["__init__"], _positional(call.args, varargs, named)  # type: ignore[attr-defined]
    return None


def _positional(args: list[Any], varargs: Any, named: frozenset[str]) -> Forwarded:
    import ast

    starred = [i for i, a in enumerate(args) if isinstance(a, ast.Starred)]
    own = (  # super().__init__(x, *args): the subclass's *args, forwarded last
        varargs is not None
        and starred == [len(args) - 1]
        and getattr(args[-1].value, "id", None) == varargs.arg
    )
    return Forwarded(starred[0] if starred else len(args), named, bool(starred) and not own)


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
