"""What ``torch._dynamo`` answers before its code runs (``runtime/lazy_imports.py``).

Why: importing ``torch._dynamo`` costs about a second (sympy, ``torch.fx``'s symbolic
shapes, Dynamo's variable trackers), and every run paid it without compiling anything:
Lightning imports ``OptimizedModule`` from it for ``isinstance`` checks, Lightning's
logging decorates methods with ``torch.compiler.disable``, and ``torch.optim`` calls
``torch._dynamo.graph_break()`` in every ``step`` and wraps ``zero_grad``, ``state_dict``
and ``add_param_group`` with ``torch._dynamo.disable`` on their first call. None of
these does anything unless something is being compiled, and nothing can be compiled
before ``torch._dynamo``'s code has run. So until then these three names answer for it:

- :func:`graph_break` does nothing, as Dynamo's own does when called outside a trace.
- :func:`disable` returns a function that calls the wrapped one directly while Dynamo is
  not loaded (no frame can be traced then) and, once it is, Dynamo's own ``disable`` of
  the same function, made on the first call after the load and kept.
- :class:`OptimizedModule` is a class no object is an instance of while Dynamo is not
  loaded (``torch.compile`` loads it before it makes one) and, once it is, the real
  class's ``isinstance``/``issubclass`` answer.

Any other attribute runs the package's code, as does importing one of its submodules
(``torchvision.ops`` imports ``torch._dynamo.utils``); the package's own names then
replace these three in its module. References taken before that keep the stand-ins,
which from then on answer as the real objects do.

Two more things ``torch._dynamo``'s ``__init__`` does wait with it: wrapping
``torch.manual_seed`` in ``disable`` (only compiled code can tell the difference) and
allowing its own ``_DimRange`` in ``weights_only`` checkpoints (only Dynamo makes them).
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable
from typing import Any

PACKAGE = "torch._dynamo"


def _dynamo() -> Any | None:
    """The ``torch._dynamo`` module once its code has run, else ``None`` (a deferred
    module is of a subclass of ``ModuleType`` until then)."""
    module = sys.modules.get(PACKAGE)
    return module if type(module) is types.ModuleType else None


def graph_break(msg: str = "") -> None:
    """``torch._dynamo.graph_break`` outside a trace: nothing to break."""


def disable(
    fn: Callable[..., Any] | None = None, recursive: bool = True, **options: Any
) -> Any:
    """``torch._dynamo.disable(fn, recursive, reason=..., wrapping=...)``, deferred: see the
    module docstring. Without ``fn``, a decorator, as Dynamo's."""
    if fn is None:
        return functools.partial(disable, recursive=recursive, **options)
    real: Callable[..., Any] | None = None

    def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal real
        if real is None:
            dynamo = _dynamo()
            if dynamo is None:
                return fn(*args, **kwargs)
            real = dynamo.disable(fn, recursive, **options)
        return real(*args, **kwargs)

    if options.get("wrapping", True):
        functools.update_wrapper(call, fn)
    return call


class _AnswersAsDynamo(type):
    """``isinstance``/``issubclass`` against the real ``OptimizedModule`` once loaded."""

    def __instancecheck__(cls, obj: object) -> bool:
        dynamo = _dynamo()
        return dynamo is not None and isinstance(obj, dynamo.OptimizedModule)

    def __subclasscheck__(cls, sub: type) -> bool:
        dynamo = _dynamo()
        return dynamo is not None and issubclass(sub, dynamo.OptimizedModule)


class OptimizedModule(metaclass=_AnswersAsDynamo):
    """Stands for ``torch._dynamo.OptimizedModule`` in ``isinstance`` checks."""


STAND_INS = {"graph_break": graph_break, "disable": disable, "OptimizedModule": OptimizedModule}
