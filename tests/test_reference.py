"""The generated reference (docs/reference/, scripts/gen_reference.py) is what the code
says, and every option of configs/ has a comment that describes it (issue 27)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))

import gen_reference  # noqa: E402
from reference import cli_page, target_page  # noqa: E402
from reference.option_docs import undocumented  # noqa: E402

REFERENCE = ROOT / "docs" / "reference"
REGENERATE = "run `python scripts/gen_reference.py` and commit docs/reference/"


def _first_difference(old: str, new: str) -> str:
    for n, (a, b) in enumerate(zip(old.splitlines(), new.splitlines(), strict=False), 1):
        if a != b:
            return f"line {n}: committed {a[:120]!r}, the code gives {b[:120]!r}"
    return f"the committed file has {len(old.splitlines())} lines, the code gives " + str(
        len(new.splitlines())
    )


def _versions_line(page: str) -> str:
    return next((line for line in page.splitlines() if line.startswith("Versions: ")), "")


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    """Every page, generated in this process (once for the module)."""
    return gen_reference.pages()


def test_committed_reference_matches_the_code(pages: dict[str, str]) -> None:
    """Regenerated in this process and compared page by page. The third-party page
    holds torch's and Lightning's signatures: compared where the versions it names are
    the ones installed (another release changes those signatures, not this project)."""
    committed = sorted(p.name for p in REFERENCE.glob("*.md"))
    assert committed == sorted(pages), f"docs/reference/ holds other pages: {REGENERATE}"
    for name, text in pages.items():
        old = (REFERENCE / name).read_text()
        if name == target_page.THIRD_PARTY_PAGE and _versions_line(old) != _versions_line(text):
            continue
        assert old == text, (
            f"docs/reference/{name} differs from the code ({_first_difference(old, text)}): "
            f"{REGENERATE}"
        )


def test_every_option_has_a_comment() -> None:
    missing = undocumented(ROOT / "configs")
    assert missing == [], (
        "options without a comment (add one beside or above each key, saying what it does "
        "and its unit or range): " + ", ".join(missing)
    )


@pytest.fixture()
def scratch_configs(tmp_path: Path) -> Path:
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", configs)
    return configs


def test_an_option_added_without_a_comment_is_named(scratch_configs: Path) -> None:
    """Only a key's own comment counts: one added right below a commented key is named,
    in a group file and in an experiment; once commented (inline or above) it passes."""
    mlp = scratch_configs / "model" / "mlp.yaml"
    base = mlp.read_text()
    mlp.write_text(base + "width_factor: 2\n")
    experiment = scratch_configs / "experiment" / "seed_mlp.yaml"
    experiment.write_text(experiment.read_text() + "model:\n  depth_scale: 3\n")
    before = set(undocumented(ROOT / "configs"))
    added = [m for m in undocumented(scratch_configs) if m not in before]
    assert added == [
        "configs/experiment/seed_mlp.yaml:model.depth_scale",
        "configs/model/mlp.yaml:width_factor",
    ]
    mlp.write_text(base + "width_factor: 2  # hidden widths multiplied by this (>= 1)\n")
    assert "configs/model/mlp.yaml:width_factor" not in undocumented(scratch_configs)
    mlp.write_text(base + "# hidden widths multiplied by this (>= 1)\nwidth_factor: 2\n")
    assert "configs/model/mlp.yaml:width_factor" not in undocumented(scratch_configs)
    # Described once for the group, an experiment's override needs no second comment.
    assert "configs/experiment/seed_mlp.yaml:model.depth_scale" in undocumented(scratch_configs)
    mlp.write_text(base + "depth_scale: 1  # layers repeated this many times (>= 1)\n")
    assert "configs/experiment/seed_mlp.yaml:model.depth_scale" not in undocumented(
        scratch_configs
    )


def test_a_changed_comment_makes_the_reference_stale(
    scratch_configs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The configs page follows the comments: a new option shows up in the regenerated
    page, so the committed one no longer matches."""
    from reference import config_page

    mlp = scratch_configs / "model" / "mlp.yaml"
    mlp.write_text(mlp.read_text() + "width_factor: 2  # hidden widths multiplied by this\n")
    page = config_page.render(scratch_configs)
    assert "| `width_factor` | `2` | hidden widths multiplied by this |" in page
    assert page != (REFERENCE / config_page.PAGE).read_text()


def test_pages_hold_what_the_code_says(pages: dict[str, str]) -> None:
    """One fact of each kind, written as the code has it: a range from a built-in
    signature and one from limits.py, an error line with its computed parts, every
    command of pyproject.toml, a YAML comment."""
    vit = pages["targets.md"].split("### dltrain.nets.vit.ViT {")[1].split("###")[0]
    assert "| `patch_size` | an integer, &gt;= 1 | `4` |" in vit
    adam = pages["third-party-targets.md"].split("### torch.optim.Adam {")[1].split("###")[0]
    assert "| `lr` |" in adam and "&gt; 0" in adam.split("| `lr` |")[1].split("\n")[0]
    assert (
        "- `_missing`, ConfigError (exit 2): `error: <path> is not set: <target> needs it — "
        "add <plus><path>=<value> to the command`"
    ) in pages["errors.md"]
    for command in cli_page.commands(ROOT):  # pyproject.toml's [project.scripts]
        assert f"## {command} {{#{command}}}" in pages["cli.md"]
        assert f"$ {command} --help" in pages["cli.md"]
    assert "| `seed` | `42` | Seed for everything (weights, split, batch order)" in pages[
        "configs.md"
    ]
