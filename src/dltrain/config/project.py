"""The user's project folder: its configs join the built-in ones, its code imports.

A project is any folder with a ``configs/`` in the built-in group layout
(``configs/model/mynet.yaml``, ``configs/experiment/mine.yaml``, ...). Run from there,
``dl-train`` composes from, in this order (the first that has an option wins, so an
option with a built-in name replaces the built-in one):

1. each ``--config-dir DIR`` on the command line,
2. each folder in ``DLTRAIN_CONFIG_PATH`` (separated like ``PATH``),
3. ``./configs`` of the folder it runs from,
4. the built-in configs (``config/paths.py``).

Hydra's own ``--config-dir`` would add a folder *behind* the built-in configs, where an
option with a built-in name is silently shadowed; the CLI therefore moves it into
``DLTRAIN_CONFIG_PATH`` (which child processes inherit, DDP's included) and the search
path plugin (``src/hydra_plugins/dltrain_project``) puts all of them in front.

The folder it runs from, and its ``src/`` when there is one, are importable, so
``_target_: mynet.MyNet`` finds ``./mynet.py`` as ``python -m`` would.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dltrain.errors import ConfigError

ENV = "DLTRAIN_CONFIG_PATH"
PROVIDER = "dl-train project"


def user_config_dirs(cwd: Path | None = None) -> list[Path]:
    """The user's config folders, highest priority first (see the module docstring)."""
    dirs = [Path(p) for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    local = (cwd or Path.cwd()) / "configs"
    if local.is_dir():
        dirs.append(local)
    out: list[Path] = []
    for d in dirs:
        d = d.resolve()
        if d not in out:
            out.append(d)
    return out


def take_config_dirs(argv: Sequence[str]) -> list[str]:
    """Move ``--config-dir DIR`` / ``--config-dir=DIR`` / ``-cd DIR`` out of ``argv``
    into ``DLTRAIN_CONFIG_PATH`` (in front of what it holds); returns the rest of argv."""
    rest: list[str] = []
    taken: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("--config-dir", "-cd"):
            if i + 1 >= len(args):
                raise ConfigError(f"{arg} needs a folder", f"e.g. {arg} path/to/configs")
            taken.append(args[i + 1])
            i += 2
            continue
        if arg.startswith("--config-dir="):
            taken.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    for folder in taken:
        if not Path(folder).is_dir():
            raise ConfigError(
                f"--config-dir {folder} is not a folder",
                "pass a folder laid out like configs/ (model/, data/, experiment/, ...)",
            )
    if taken:
        before = [p for p in os.environ.get(ENV, "").split(os.pathsep) if p]
        os.environ[ENV] = os.pathsep.join([str(Path(f).resolve()) for f in taken] + before)
    return rest


def make_code_importable(cwd: Path | None = None) -> None:
    """Put the folder ``dl-train`` runs from and its ``src/`` first on ``sys.path`` (as
    ``python -m`` does for the current folder), and on ``PYTHONPATH`` for the processes
    a run starts (DDP ranks, joblib workers)."""
    here = (cwd or Path.cwd()).resolve()
    folders = [str(here)] + ([str(here / "src")] if (here / "src").is_dir() else [])
    for folder in reversed(folders):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    current = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    missing = [f for f in folders if f not in current]
    if missing:
        os.environ["PYTHONPATH"] = os.pathsep.join(missing + current)
