"""Run directories that never collide: ``${unique_dir:<parent>}`` in ``configs/hydra``.

Why not Hydra's ``${now:...}`` alone: two runs started in the same second (a job array,
a shell loop with ``&``, two terminals) got the same ``<YYYY-MM-DD_HH-MM-SS>`` folder and
wrote into each other's files (hydra issues #1607, #2925). Here the folder is claimed
with ``mkdir``, which fails for every process but one when they race for a name; the
others take the next suffix. Names stay readable and sort by start time:
``2026-12-01_14-32-51``, then ``2026-12-01_14-32-51_01``, ``_02``...

The resolver is cached (``use_cache``), so every later look-up of ``hydra.run.dir`` in
the same config returns the claimed folder, and Hydra copies that cache into a
multirun's job configs (``load_sweep_config``), so its jobs share one sweep folder.
An explicit ``hydra.run.dir=...`` (how ``resume=auto`` continues a run) bypasses it.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf

RESOLVER = "unique_dir"
STAMP = "%Y-%m-%d_%H-%M-%S"


def claim(parent: str) -> str:
    """Create and return a new ``<parent>/<time>[_NN]`` folder no other process holds."""
    base = Path(parent)
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime(STAMP)
    for n in itertools.count():
        path = base / (stamp if n == 0 else f"{stamp}_{n:02d}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return str(path)
    raise AssertionError("unreachable")


def register() -> None:
    """Make ``${unique_dir:...}`` known to OmegaConf (before Hydra composes)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, claim, use_cache=True)
