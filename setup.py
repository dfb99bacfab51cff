"""Build hook: the wheel carries the built-in configs as ``dltrain/configs``.

``configs/`` stays at the top of the repository (where the README and ``make`` point
people to edit them); the build copies it into the package, and the runtime looks
there first (``src/dltrain/config/paths.py``). An editable install skips the copy and
finds ``configs/`` next to ``src/``. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONFIGS = Path(__file__).resolve().parent / "configs"


class BuildPyWithConfigs(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "dltrain" / "configs"
        shutil.copytree(
            CONFIGS, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not getattr(self, "editable_mode", False):
            base = Path(self.build_lib) / "dltrain" / "configs"
            outputs += [str(base / p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml")]
        return outputs


setup(cmdclass={"build_py": BuildPyWithConfigs})
