"""Garbage-collector settings for a process that imports torch, Lightning and friends.

Why: those imports create ~500,000 long-lived Python objects, and every automatic
full collection walks all of them again: several run during the imports and more
while the interpreter shuts down. Measured on the 2-core development machine, that
is ~1 s at start and ~1.3 s at exit of every ``dl-train`` run, a fifth of a short
run's wall time. Python's documented pattern for long-lived objects removes both:
``gc.disable()`` early, ``gc.freeze()`` once the imports are done (frozen objects are
never examined again), then ``gc.enable()`` so the run's own garbage is collected as
usual.
"""

from __future__ import annotations

import gc

#: Environment variable: a file to write the modules the process imported to, at exit.
IMPORTS_AT_EXIT = "DLTRAIN_IMPORTS_AT_EXIT"
#: Environment variable: ``1`` imports every package eagerly (no deferring finder).
EAGER_IMPORTS = "DLTRAIN_EAGER_IMPORTS"


def defer_collection() -> None:
    """At process start: no automatic collections while the libraries import."""
    gc.disable()


def freeze_imports() -> None:
    """After the heavy imports: keep what exists out of later collections (once per
    process: a sweep's later jobs in the same process must not freeze the earlier
    jobs' garbage), then collect as usual."""
    if gc.get_freeze_count() == 0:
        gc.freeze()
    gc.enable()


def defer_unused_imports() -> None:
    """At process start, before anything imports torchmetrics or torchvision: their
    metric families and model zoo that a run does not use are imported only when used
    (runtime/lazy_imports.py; docs/explanation/start-up.md)."""
    import os

    from dltrain.runtime import lazy_imports

    if os.environ.get(EAGER_IMPORTS) != "1":  # the escape hatch, and the bench's baseline
        lazy_imports.install()
    if os.environ.get(IMPORTS_AT_EXIT):
        lazy_imports.dump_at_exit(os.environ[IMPORTS_AT_EXIT])
