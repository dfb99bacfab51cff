"""Deferred package initialisers: the parts of torchmetrics, torchvision, scipy and torch
(Dynamo, Inductor) a run never uses are not imported until something touches them.

Why: ``import lightning`` imports all of torchmetrics (``lightning.fabric.utilities.
imports`` reads its version by importing it), and torchmetrics' ``__init__`` modules
import every metric family: the image functions pull in torchvision's model zoo (and,
through ``torchvision.ops``, ``torch._dynamo``), the text ones transformers, the audio
ones ``scipy.signal``. That is seconds of every run's start for metrics this runner never
computes (docs/explanation/start-up.md has the figures and the upstream patch).

How: a ``sys.meta_path`` finder answers for the package names in :data:`DEFERRED` only.
It asks the other finders for the real spec and wraps its loader, so the module object
is created as usual but its ``__init__`` code does not run until an attribute of it is
read; then it runs once, in place, with the real loader.

Why this is safe (the same contract as ``importlib.util.LazyLoader``, which this follows):

- ``from pkg import name`` and ``pkg.name`` read an attribute, so they run the package's
  code at once: whoever uses a deferred package gets the same module, fully initialised.
  The deferral only saves time where nobody reads the package's attributes.
- What the import system itself reads before loading (``__spec__``, ``__path__``,
  ``__name__``, ``__file__``...) is answered without loading: those are set from the spec
  before any module code runs, so they are what an eager import would show. This is the
  one difference from ``LazyLoader``, whose module loads on the ``__path__`` read that
  importing a *submodule* makes: torchmetrics' own ``__init__`` imports submodules of
  the deferred packages (``torchmetrics.image.psnr``...), which therefore load for real,
  while the package's ``__init__`` (which imports the costly siblings) waits.
- Only packages whose ``__init__`` just re-exports their submodules are listed: none
  changes its ``__path__`` or registers anything its submodules rely on, so running it
  after some of its submodules is the same as running it before them.
- Where the rest of the parent package relies on the order in which the package's code
  imported shared modules, those modules are imported when the deferred package is
  (its "first" modules in :data:`DEFERRED`). torchmetrics needs this: its
  ``utilities`` must be imported before its ``metric`` module (the two import each
  other), which the eager ``torchmetrics.functional`` did on the way to its audio
  metrics; deferring that package without importing ``torchmetrics.utilities`` in its
  place makes ``import torchmetrics`` fail with a circular import.
- A package may also have "stand-ins": attributes its module answers before its code
  runs, without running it. They exist for library code that reads a package at import
  time only to patch it: torchmetrics' ``__init__`` reads ``scipy.signal.hamming`` (and
  sets it to ``scipy.signal.windows.hamming`` when absent, as it is since scipy 1.13),
  which would run scipy.signal's code (and import scipy.stats) in every run. The stand-in
  is what that patch puts there: a function that calls ``scipy.signal.windows.hamming``.
  The package's code, when it runs, may bind the name itself (an older scipy's own
  ``hamming``); the stand-in stays only where the package defines no such name.
- A package whose submodules import names from the package itself (``torch._dynamo``'s
  do) "runs before its submodules": asked for one of its submodules, the finder runs
  the package's code first, as an eager import would have. When that code imported the
  very submodule on its way, the finder returns the module it made (the import system,
  past its check of ``sys.modules``, would otherwise run the submodule's code again).
- A package may list submodules its module answers once they are imported, without
  running its code: ``torch.use_deterministic_algorithms`` imports
  ``torch._inductor.config`` to set one flag, and Inductor's code imports Dynamo.
- Loading is guarded by a lock and re-entrant (the package's own code may read its
  module while it runs); another thread waits until the code has run.
- Only plain source packages are deferred (a loader with ``exec_module`` and the
  default module creation); anything else is imported as usual.
- A package whose code fails when it finally runs leaves ``sys.modules`` and raises, as
  a failed eager import does.

``DLTRAIN_TRACE_DEFERRED=1`` prints the stack that makes a deferred package load.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import json
import os
import sys
import threading
import traceback
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dltrain.runtime import dynamo_stand_ins


@dataclass(frozen=True)
class Deferral:
    """How one package is deferred (see the module docstring)."""

    #: Modules imported in the package's place when it is imported.
    first: tuple[str, ...] = ()
    #: Attributes its module answers before its code runs, without running it.
    stand_ins: Mapping[str, Any] = field(default_factory=dict)
    #: Submodules its module answers, once imported, without running its code.
    submodules: tuple[str, ...] = ()
    #: Whether importing one of its submodules runs its code first, as an eager import
    #: does: for packages whose submodules import names from the package itself.
    runs_before_submodules: bool = False


def _hamming(*args: Any, **kwargs: Any) -> Any:
    """``scipy.signal.hamming`` as torchmetrics' ``__init__`` patches it in (scipy 1.13
    moved it to ``scipy.signal.windows``): the same window, imported when first called."""
    from scipy.signal.windows import hamming

    return hamming(*args, **kwargs)


#: Packages whose ``__init__`` runs only when one of their attributes is read, with what
#: is imported in their place and what they answer before then (see the module docstring).
DEFERRED: Mapping[str, Deferral] = {
    # torchmetrics' functional __init__ imports every metric function by name, the text
    # ones (BERTScore) transformers: 1 s of every run.
    "torchmetrics.functional": Deferral(first=("torchmetrics.utilities",)),
    # torchmetrics' metric families: each package's __init__ imports every metric of
    # the family (image -> torchvision's model zoo, text -> transformers).
    "torchmetrics.functional.image": Deferral(),
    "torchmetrics.functional.text": Deferral(),
    "torchmetrics.functional.audio": Deferral(),
    "torchmetrics.image": Deferral(),
    "torchmetrics.text": Deferral(),
    "torchmetrics.audio": Deferral(),
    # torchvision's __init__ imports its model zoo.
    "torchvision.models": Deferral(),
    # torchmetrics' __init__ imports scipy.signal (and with it scipy.stats, 0.6-0.8 s)
    # only to patch in ``hamming`` for an audio metric's dependency.
    "scipy.signal": Deferral(stand_ins={"hamming": _hamming}),
    # Dynamo, ~1 s, imported by Lightning and torch.optim for names that do nothing
    # until something is compiled (runtime/dynamo_stand_ins.py).
    "torch._dynamo": Deferral(stand_ins=dynamo_stand_ins.STAND_INS, runs_before_submodules=True),
    # torchvision's detection ops; roi_align imports Dynamo. Their package code also
    # registers the ops' ONNX exporters, so a submodule import runs it first.
    "torchvision.ops": Deferral(runs_before_submodules=True),
    # Inductor's __init__ imports Dynamo; torch.use_deterministic_algorithms, which
    # Lightning calls in every run, only sets a flag in its config.
    "torch._inductor": Deferral(submodules=("config", "custom_graph_pass")),
}

#: What the import system reads of a module before using it; set from the spec.
_PROBES = frozenset(
    {
        "__spec__",
        "__path__",
        "__name__",
        "__loader__",
        "__package__",
        "__file__",
        "__cached__",
        "__class__",
    }
)


class _DeferredModule(types.ModuleType):
    """A module whose code has not run yet; the first other attribute read runs it."""

    def __getattribute__(self, attr: str) -> Any:
        if attr in _PROBES or attr in _deferral(self).stand_ins:
            return object.__getattribute__(self, attr)
        if attr in _deferral(self).submodules:
            name = object.__getattribute__(self, "__name__")
            if f"{name}.{attr}" in sys.modules:
                return sys.modules[f"{name}.{attr}"]
        if _load(self):
            return getattr(self, attr)
        return types.ModuleType.__getattribute__(self, attr)  # its own code, while it runs

    def __delattr__(self, attr: str) -> None:
        _load(self)  # deleting before the code ran would be undone by it
        types.ModuleType.__delattr__(self, attr)


def _deferral(module: types.ModuleType) -> Deferral:
    return object.__getattribute__(module, "__spec__").loader_state["deferral"]


def _load(module: types.ModuleType) -> bool:
    """Run the deferred code once; ``False`` while it runs in this thread (re-entry)."""
    spec = object.__getattribute__(module, "__spec__")
    state = spec.loader_state
    with state["lock"]:
        if state["loading"]:
            return False
        if type(module) is _DeferredModule:
            _run(module, spec, state)
    return True


def _run(module: types.ModuleType, spec: importlib.machinery.ModuleSpec, state: dict) -> None:
    """Run the package's code in place with the real loader, then make it a plain module."""
    real = state["loader"]
    if os.environ.get("DLTRAIN_TRACE_DEFERRED"):
        traceback.print_stack(limit=12)
        print(f"^ loads deferred {spec.name}", file=sys.stderr)
    state["loading"] = True
    try:
        spec.loader = real
        module.__loader__ = real
        real.exec_module(module)
    except BaseException:
        # As a failed eager import: the module leaves sys.modules, the error propagates.
        if sys.modules.get(spec.name) is module:
            del sys.modules[spec.name]
        raise
    finally:
        module.__class__ = types.ModuleType
        state["loading"] = False


class _DeferringLoader(importlib.abc.Loader):
    """Wraps a source package's loader: creates the module as usual, defers its code."""

    def __init__(self, real: importlib.abc.Loader, deferral: Deferral) -> None:
        self.real = real
        self.deferral = deferral

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None  # the default module, as the real (source) loader would make

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__.loader_state = {
            "loader": self.real,
            "lock": threading.RLock(),
            "loading": False,
            "deferral": self.deferral,
        }
        module.__dict__.update(self.deferral.stand_ins)
        module.__class__ = _DeferredModule
        for name in self.deferral.first:  # what the rest of the parent expects imported
            importlib.import_module(name)

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, get_source...
        return getattr(self.real, name)


class DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds the packages in ``names`` with the other finders and defers their code.
    ``names`` may map each package to its :class:`Deferral`."""

    def __init__(self, names: Iterable[str] | Mapping[str, Deferral]) -> None:
        if isinstance(names, Mapping):
            self.names = dict(names)
        else:
            self.names = dict.fromkeys(names, Deferral())

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return self._load_parent_first(fullname)
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                return _deferred(spec, self.names[fullname])
        return None

    def _load_parent_first(self, fullname: str) -> importlib.machinery.ModuleSpec | None:
        """For a submodule of a deferred package that ``runs_before_submodules``: run the
        package's code, as an eager import would have before this one; ``None`` lets the
        other finders find the submodule, unless that code has imported it already."""
        parent = sys.modules.get(fullname.rpartition(".")[0])
        if type(parent) is not _DeferredModule:
            return None
        if not _deferral(parent).runs_before_submodules or not _load(parent):
            return None  # (not loaded: the package's own code imports its submodule)
        done = sys.modules.get(fullname)
        return None if done is None else _already_imported(done)


class _AlreadyImported(importlib.abc.Loader):
    """The loader for a submodule that its package's code imported on the way to the
    import that asked for it. The import system, past its check of ``sys.modules``,
    loads whatever spec a finder returns: this one hands back the module as it is."""

    def __init__(self, module: types.ModuleType, real: Any) -> None:
        self.module = module
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__.loader = self.real  # its spec as it was


def _already_imported(module: types.ModuleType) -> importlib.machinery.ModuleSpec:
    """The module's own spec (which the import system sets on it again), lent a loader
    that creates nothing and runs nothing."""
    spec = module.__spec__
    spec.loader = _AlreadyImported(module, spec.loader)
    return spec


def _deferred(
    spec: importlib.machinery.ModuleSpec, deferral: Deferral
) -> importlib.machinery.ModuleSpec:
    """The spec with its loader wrapped, when the loader is a plain source loader."""
    loader = spec.loader
    plain = isinstance(
        loader, importlib.machinery.SourceFileLoader | importlib.machinery.SourcelessFileLoader
    )
    if plain and spec.submodule_search_locations is not None:
        spec.loader = _DeferringLoader(loader, deferral)
    return spec


def install(names: Mapping[str, Deferral] = DEFERRED) -> DeferringFinder:
    """Put the finder first on ``sys.meta_path`` (once per process). Packages already
    imported are left as they are."""
    for finder in sys.meta_path:
        if isinstance(finder, DeferringFinder):
            return finder
    finder = DeferringFinder(names)
    sys.meta_path.insert(0, finder)
    return finder


def deferred_names() -> list[str]:
    """The modules imported whose code has not run (yet)."""
    return sorted(n for n, m in list(sys.modules.items()) if type(m) is _DeferredModule)


def dump_at_exit(path: str) -> None:
    """At exit, write ``{"loaded": [...], "deferred": [...]}`` (sorted module names) to
    ``path``: what the process really imported, for tests and the start-up notes."""

    def dump() -> None:
        deferred = deferred_names()
        names = sorted(n for n in list(sys.modules) if n not in set(deferred))
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"loaded": names, "deferred": deferred}, f, indent=0)

    atexit.register(dump)


def loaded(name: str) -> bool:
    """Whether module ``name`` is imported and its code has run (not merely deferred)."""
    module = sys.modules.get(name)
    return module is not None and type(module) is not _DeferredModule
