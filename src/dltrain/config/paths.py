"""Where the built-in configs are: one definition for the CLI and the config checks.

A wheel carries them inside the package (``dltrain/configs``, copied in by the build,
see setup.py); an editable install from a clone finds them at the top of the project
(``configs/``, next to ``src/``). ``DLTRAIN_CONFIG_DIR`` replaces them altogether.
The user's own configs (a project folder, ``--config-dir``) are added in front of these
by ``config/project.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGED = Path(__file__).resolve().parents[1] / "configs"
REPO_TOP = Path(__file__).resolve().parents[3] / "configs"


def builtin_config_dir() -> str:
    if os.environ.get("DLTRAIN_CONFIG_DIR"):
        return os.environ["DLTRAIN_CONFIG_DIR"]
    return str(PACKAGED if (PACKAGED / "train.yaml").is_file() else REPO_TOP)


CONFIG_DIR = builtin_config_dir()
