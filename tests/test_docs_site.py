"""The documentation site builds with ``mkdocs build --strict``: a broken link or anchor,
a page missing from the nav, or a nav entry without its page fails (mkdocs.yml's
``validation`` settings make each of those a warning, and ``--strict`` fails on any)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import tomllib

from conftest import BIN, ROOT


def test_site_builds_strictly_with_no_warning(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "WARNING" not in output, output[-4000:]
    assert (tmp_path / "site" / "getting-started" / "tour" / "index.html").exists()
    assert (tmp_path / "site" / "assets" / "tour" / "learning_curves.png").exists()


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """The check above can fail: the same config on a copy with one dead link does."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the tour](getting-started/no-such-page.md).\n")
    config = (ROOT / "mkdocs.yml").read_text().split("\nnav:")[0]
    config = config.replace("paths: [src]", f"paths: [{ROOT / 'src'}]")
    (tmp_path / "mkdocs.yml").write_text(config + "\nnav:\n  - Home: index.md\n")
    proc = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "no-such-page.md" in proc.stdout + proc.stderr


def test_architecture_page_names_the_layers_of_the_contract() -> None:
    """The layers the architecture page lists and draws are import-linter's, in order:
    a layer added to pyproject.toml without the page fails here."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in contracts["contracts"] if c["type"] == "layers")["layers"]
    names = [
        " \\| ".join(f"`{part.strip().removeprefix('dltrain.')}`" for part in layer.split("|"))
        for layer in layers
    ]
    page = (ROOT / "docs" / "explanation" / "architecture.md").read_text()
    assert f"| `layers` | layers | {' > '.join(names)}:" in page
    drawn = re.search(r"```mermaid\n(.*?)```", page, re.S).group(1)
    for layer in layers:
        for part in layer.split("|"):
            short = part.strip().removeprefix("dltrain.")
            assert re.search(rf"^\s*{short}\[", drawn, re.M), f"{short} is not drawn"
