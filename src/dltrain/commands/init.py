"""``dl-init DIR``: a small working project of the user's own, in a new folder.

It holds a net, a CSV data module with a tiny sample, their configs and an experiment
that picks them, a pytest file, a README and a CI workflow; ``dl-train
experiment=<name>`` trains in it at once, offline. The files are templates in
``project_template/`` (``NAME`` in a path and ``{{name}}`` in a file become the
project's name; ``.tmpl`` is dropped; ``github/`` and ``gitignore`` get their dot).
"""

from __future__ import annotations

import argparse
import keyword
import re
from importlib.util import find_spec
from pathlib import Path

from dltrain import __version__
from dltrain.errors import ConfigError

TEMPLATE = Path(__file__).resolve().parent / "project_template"
DOTTED = {"github": ".github", "gitignore": ".gitignore"}


def project_name(folder: Path, given: str | None) -> str:
    """A Python package name: ``--name``, else the folder's name made into one."""
    name = given or re.sub(r"\W+", "_", folder.resolve().name.lower()).strip("_")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ConfigError(f"'{name}' is not a valid Python package name", "pass --name my_project")
    try:
        taken = find_spec(name) is not None
    except (ImportError, ValueError):
        taken = True
    if taken:
        raise ConfigError(
            f"'{name}' is already an importable module here and the project's own would "
            "be shadowed or shadow it",
            "pass another --name",
        )
    return name


def write_project(folder: Path, name: str) -> list[Path]:
    """Copy the template into ``folder`` (which must be new or empty); the files written."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(
            f"{folder} exists and is not an empty folder", "pass a new folder: dl-init my_project"
        )
    written = []
    for source in sorted(TEMPLATE.rglob("*.tmpl")):
        parts = list(source.relative_to(TEMPLATE).with_suffix("").parts)
        parts = [DOTTED.get(p, p) if i == 0 else p for i, p in enumerate(parts)]
        target = folder.joinpath(*[p.replace("NAME", name) for p in parts])
        target.parent.mkdir(parents=True, exist_ok=True)
        text = source.read_text().replace("{{name}}", name).replace("{{version}}", __version__)
        target.write_text(text)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dl-init",
        description="Write a small working dl-train project (net, data, configs, tests, CI) "
        "into a new folder.",
    )
    parser.add_argument("folder", type=Path, help="the new project's folder")
    parser.add_argument("--name", help="its Python package and config name (default: the folder's)")
    opts = parser.parse_args(argv)
    name = project_name(opts.folder, opts.name)
    files = write_project(opts.folder, name)
    for path in files:
        print(f"  {path.relative_to(opts.folder)}")
    print(
        f"wrote {len(files)} files to {opts.folder}; next:\n"
        f"  cd {opts.folder}\n"
        f"  dl-train experiment={name}     # trains on data/sample.csv in seconds\n"
        "  pytest -q && dl-smoke          # what its CI runs"
    )
    return 0
