"""Write the upstream patch of docs/explanation/start-up.md: torchmetrics' top-level
``__init__`` modules resolve the image, text, audio, detection and multimodal names on
first use (PEP 562 ``__getattr__``) instead of importing those families (torchvision's
model zoo, transformers, ``scipy.signal``) at ``import torchmetrics``.

    python scripts/upstream/torchmetrics_lazy_families.py SITE_PACKAGES OUT_DIR

copies ``torchmetrics`` from SITE_PACKAGES into OUT_DIR, rewrites the two files there
and prints the unified diff (``OUT_DIR`` first on ``PYTHONPATH`` measures the patched
package against the installed one; ``patch -p1`` in site-packages applies it).
"""

from __future__ import annotations

import ast
import difflib
import shutil
import sys
from pathlib import Path

#: The families whose names are re-exported by the top-level modules.
LAZY = ("audio", "image", "text", "detection", "multimodal")

GETATTR = """

# The image, text, audio, detection and multimodal families import torchvision's model
# zoo, transformers and scipy.signal: their names here are resolved on first use.
def __getattr__(name: str) -> object:
    if name in _LAZY_NAMES:
        import importlib

        module, attr = _LAZY_NAMES[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
"""


def _family_import(node: ast.stmt, package: str) -> bool:
    prefixes = tuple(f"{package}.{f}" for f in LAZY)
    return isinstance(node, ast.ImportFrom) and (node.module or "").startswith(prefixes)


def rewrite(source: str, package: str, drop_scipy_shim: bool) -> str:
    """The module with its family imports replaced by a name table + ``__getattr__``."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    drop: list[tuple[int, int]] = []
    names: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        body = node.body if isinstance(node, ast.If) else [node]
        if body and all(_family_import(n, package) for n in body):
            for n in body:
                for alias in n.names:
                    names[alias.asname or alias.name] = (n.module, alias.name)
            drop.append((node.lineno, node.end_lineno))
        elif drop_scipy_shim and isinstance(node, ast.If) and "scipy" in ast.unparse(node.test):
            # The same shim stays where it is needed: torchmetrics/{,functional/}audio.
            drop.append((node.lineno, node.end_lineno))
    for start, end in sorted(drop, reverse=True):
        del lines[start - 1 : end]
    table = "".join(f"    {k!r}: ({m!r}, {a!r}),\n" for k, (m, a) in names.items())
    return "".join(lines) + f"\n_LAZY_NAMES = {{\n{table}}}\n" + GETATTR


def main(site: Path, out: Path) -> None:
    shutil.copytree(site / "torchmetrics", out / "torchmetrics", dirs_exist_ok=True)
    for rel, package, shim in (
        ("torchmetrics/__init__.py", "torchmetrics", True),
        ("torchmetrics/functional/__init__.py", "torchmetrics.functional", False),
    ):
        old = (site / rel).read_text()
        new = rewrite(old, package, shim)
        (out / rel).write_text(new)
        sys.stdout.writelines(
            difflib.unified_diff(
                old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{rel}", f"b/{rel}"
            )
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
