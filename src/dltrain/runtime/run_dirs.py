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

The run's record (``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml``) is written
here too, not by Hydra: see ``JobRecord``.
"""

from __future__ import annotations

import copy
import itertools
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, read_write

RESOLVER = "unique_dir"
STAMP = "%Y-%m-%d_%H-%M-%S"
#: Where a run's record goes, inside its run directory (Hydra's ``output_subdir``).
RECORD_DIR = ".hydra"
#: Run directories that held a record before this process's job started (an existing
#: run a command is aimed at): a rejected command must not remove them.
_RECORDED_BEFORE: set[Path] = set()


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


def held_a_record(run_dir: Path) -> bool:
    """Did ``run_dir`` hold a run's record before this job started (``JobRecord``)?"""
    return run_dir.resolve() in _RECORDED_BEFORE


@dataclass(frozen=True)
class JobRecord:
    """The three files Hydra would write into ``<run dir>/.hydra/``, held in memory until
    the command's checks have passed.

    Why not let Hydra write them: Hydra writes ``.hydra/*`` before the task starts, so a
    command aimed at an existing run (``hydra.run.dir=<run> +model.heads=0``, or a
    ``resume=auto`` refused because the checkpoint belongs to another model) had already
    replaced that run's record when it was rejected. ``configs/hydra/default.yaml`` sets
    ``output_subdir: null`` (Hydra writes nothing) and the CLI writes this record instead:
    at once into a run directory that has none (a new run, a sweep trial: the record is
    there even if the process is killed next), and over an existing record only once the
    checks pass. Chosen over a backup-and-restore, which a kill between the two steps
    defeats, and over running the checks before Hydra, which would mean composing the
    config a second time outside Hydra. Some rejections can only come later, once the
    data is read (``task=regression`` on images, a plateau scheduler without validation):
    for those the CLI puts back the record the directory held (``restore``), read when
    the job started. Each file is replaced atomically (temporary file, rename), so a
    record is never half-written. The texts are taken when the job starts, so they are
    exactly what Hydra would have written.
    """

    folder: Path
    files: dict[str, str]
    previous: dict[str, bytes]

    @classmethod
    def capture(cls, cfg: DictConfig) -> JobRecord | None:
        """This job's record; ``None`` outside a Hydra job, or when the command line set
        ``hydra.output_subdir`` itself (Hydra then writes, or skips, as it does unasked)."""
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return None
        hydra_cfg = HydraConfig.instance().cfg
        if any(o.startswith("hydra.output_subdir=") for o in hydra_cfg.hydra.overrides.hydra):
            return None
        shown = copy.deepcopy(hydra_cfg)
        with read_write(shown.hydra):  # record where the files are, as Hydra would
            shown.hydra.output_subdir = RECORD_DIR
        files = {
            "config.yaml": OmegaConf.to_yaml(cfg),
            "hydra.yaml": OmegaConf.to_yaml(shown),
            "overrides.yaml": OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task),
        }
        folder = Path(str(hydra_cfg.hydra.runtime.output_dir)) / RECORD_DIR
        previous = {n: (folder / n).read_bytes() for n in files if (folder / n).is_file()}
        if previous:
            _RECORDED_BEFORE.add(folder.parent.resolve())
        return cls(folder, files, previous)

    def write(self, *, replace: bool) -> None:
        """Write the record; ``replace=False``: only where the run directory has none.
        Nothing is written once the run directory is gone (a rejected new run's
        directory is removed, ``config/checks.py``)."""
        if not self.folder.parent.is_dir() or (not replace and self.folder.exists()):
            return
        self.folder.mkdir(exist_ok=True)
        for name, text in self.files.items():
            self._replace(name, text.encode("utf-8"))

    def restore(self) -> None:
        """Put back the record the run directory held before this job (a command
        rejected after its record was written)."""
        if self.folder.is_dir():
            for name, data in self.previous.items():
                self._replace(name, data)

    def _replace(self, name: str, data: bytes) -> None:
        tmp = self.folder / f".{name}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.folder / name)
