"""The record every run leaves: ``results.json``, written atomically by rank 0."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "torch",
    "torchvision",
    "lightning",
    "hydra-core",
    "omegaconf",
    "torchmetrics",
    "numpy",
    "dl-train",
)


def versions() -> dict[str, str]:
    """Python and package versions, plus the project's git commit when there is one."""
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    commit = git_commit()
    if commit:
        out["git_commit"] = commit
    return out


def git_commit() -> str | None:
    """dl-train's commit (with ``-dirty`` for local changes) when it runs from a checkout;
    None for an installed wheel (whose folder may sit inside some other repository)."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "pyproject.toml").is_file():
        return None
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON via a temp file + rename: a kill never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=False, default=str)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results(run_dir: Path, status: str, **fields: Any) -> Path:
    """``results.json``: status, metrics, counts, timings and versions of one run."""
    payload: dict[str, Any] = {"status": status}
    payload.update(fields)
    payload["versions"] = versions()
    path = run_dir / "results.json"
    write_json(path, payload)
    return path
