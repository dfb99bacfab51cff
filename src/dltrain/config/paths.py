"""Where the built-in configs are: one definition for the CLI and the config checks."""

from __future__ import annotations

import os
from pathlib import Path

# The configs live at the top of the project (`configs/`); the package is installed
# editable, so they are found next to `src/`. DLTRAIN_CONFIG_DIR points elsewhere.
CONFIG_DIR = os.environ.get(
    "DLTRAIN_CONFIG_DIR", str(Path(__file__).resolve().parents[3] / "configs")
)
