"""Print pip constraints that pin every declared dependency to its lowest allowed release.

Why by hand: pip has no "lowest versions" resolution (uv's ``--resolution lowest-direct``
does, but uv does not take torch from this machine's local wheel files). For each
requirement of ``[project] dependencies`` (and the extras named on the command line) this
asks the package index which releases exist (``pip index versions``) and pins the lowest
one the declared range admits. ``make test-min`` installs with these constraints.

torch and torchvision are left out (``--skip``): pip here can only install the release that
lies on local disk, so their floors are documented, not installed (README, "Dependencies").
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

try:  # Python 3.11+
    import tomllib
except ImportError:  # 3.10: pip carries tomli
    from pip._vendor import tomli as tomllib

try:
    from packaging.requirements import Requirement
    from packaging.version import InvalidVersion, Version
except ImportError:  # a bare venv: pip carries its own copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.version import InvalidVersion, Version


def declared(pyproject: Path, extras: list[str]) -> list[Requirement]:
    """The project's requirements: the core list and the named extras."""
    project = tomllib.loads(pyproject.read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def releases(name: str) -> list[Version]:
    """Every release of ``name`` the index offers (``pip index versions``)."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", name],
        capture_output=True, text=True, check=True,
    ).stdout
    match = re.search(r"Available versions: (.*)", out)
    found = []
    for text in (match.group(1).split(", ") if match else []):
        try:
            found.append(Version(text.strip()))
        except InvalidVersion:
            continue
    return found


def lowest(req: Requirement) -> Version:
    """The lowest final release inside ``req``'s range."""
    allowed = [v for v in releases(req.name) if not v.is_prerelease and v in req.specifier]
    if not allowed:
        raise SystemExit(f"error: no release of {req.name} matches {req.specifier}")
    return min(allowed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("--extras", nargs="*", default=["dev"])
    parser.add_argument("--skip", nargs="*", default=["torch", "torchvision"])
    args = parser.parse_args()
    for req in declared(args.pyproject, args.extras):
        if req.name not in args.skip:
            print(f"{req.name}=={lowest(req)}")


if __name__ == "__main__":
    main()
