"""Words for types and values in error lines: ``describe`` says what an annotation
accepts ("an integer >= 1", "one of 'sgd', 'adam'"), ``show`` writes a value as the user
would type it. Apart from ``signatures.py`` (the walk and the checks) to keep each short.
"""

from __future__ import annotations

import collections.abc as abc
import datetime
import enum
import pathlib
import types
import typing
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union

from dltrain.config.signature_reading import _strip


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
