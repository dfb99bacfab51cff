"""Modules of ``dltrain.data`` that moved when it was split into ``sources``, ``loading``
and ``storage``: old name -> new. Checkpoints written before name their classes by the
old ``_target_`` and are renamed on load (``checkpointing/checkpoint_io.py``); a config
that still names one is refused with the new name (``config/targets.py``).

Plain data, no imports: the config layer reads it before anything heavy loads.
"""

from __future__ import annotations

MOVED_MODULES = {
    f"dltrain.data.{name}": f"dltrain.data.{package}.{name}"
    for package, names in {
        "sources": "cifar digits mnist mnist1d synthetic hf_dataset image_folder tabular "
        "tabular_prep tabular_split text text_files tokenizers",
        "loading": "memory batches record_batches text_batches placement augment arguments",
        "storage": "record_cache image_decode files idx",
    }.items()
    for name in names.split()
}


def moved_target(target: str) -> str:
    """``target`` (``module.Class``) with its module renamed where it moved."""
    module, _, name = target.rpartition(".")
    return f"{MOVED_MODULES[module]}.{name}" if module in MOVED_MODULES else target
