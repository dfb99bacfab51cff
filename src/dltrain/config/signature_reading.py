"""Reading a class's signature as a config sees it: its parameters, their defaults and
annotations rewritten for config values (``config_type``), with the ranges of
third-party classes added (``limits.py``), and ``**kwargs`` followed into the base class
a ``super().__init__`` hands them to (``Forwarded``).

Apart from ``signatures.py``, which walks a config and checks values against what this
module reads, so that each stays under a few hundred lines.
"""

from __future__ import annotations

import collections.abc as abc
import datetime
import enum
import functools
import inspect
import os
import pathlib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from dltrain.config import targets
from dltrain.config.limits import limits_of, resolved_by_recipe


class _Sentinel:
    """A value that is not one: unresolvable here, or unset (``???``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


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


def _strip(tp: Any) -> Any:
    return typing.get_args(tp)[0] if typing.get_origin(tp) is Annotated else tp


@functools.lru_cache(maxsize=256)
def signature_of(target: str) -> Signature | None:
    """The parameters of the class or function a ``_target_`` names, with config-facing
    annotations and the limits of ``limits.py``; ``**kwargs`` followed up the MRO."""
    obj = targets.locate(target)  # an import mistake: ConfigError naming it
    return read_signature(obj, target)


def read_signature(obj: Any, target: str) -> Signature | None:
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
