"""Generate the reference pages of the documentation site, docs/reference/*.md, from the
code: the config groups and options of configs/ (with their comments), the classes their
``_target_`` names (signatures and allowed values, read as the config check reads them),
the commands of pyproject.toml and their --help, and every error line of src/dltrain.

    python scripts/gen_reference.py            # rewrite docs/reference/
    python scripts/gen_reference.py --out DIR  # somewhere else

The output is deterministic (sorted, no times or addresses), so a rerun on an unchanged
tree rewrites the same bytes; tests/test_reference.py regenerates it and compares. An
option of configs/ that no comment describes is listed, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # the reference package beside this script

from reference import cli_page, config_page, error_page, target_page  # noqa: E402
from reference.markdown import GENERATED  # noqa: E402
from reference.option_docs import undocumented  # noqa: E402

OUT = ROOT / "docs" / "reference"
#: Page file -> (title, what it holds), in the order index.md lists them.
PAGES = {
    config_page.PAGE: ("Config groups and options", "every group of configs/, each option "
                       "with its keys, values and comments"),
    target_page.BUILTIN_PAGE: ("Built-in classes", "the top-level settings and every dltrain "
                               "class a `_target_` names: parameters, allowed values, defaults"),
    target_page.THIRD_PARTY_PAGE: ("Third-party classes", "the torch and Lightning classes the "
                                   "configs name, as the config check reads them"),
    cli_page.PAGE: ("Commands", "every dl-* command and its --help"),
    error_page.PAGE: ("Error lines", "every `error: what — how to fix` line, by module"),
}  # fmt: skip


def pages(root: Path = ROOT) -> dict[str, str]:
    """File name -> content of every reference page."""
    configs = root / "configs"
    out = {
        config_page.PAGE: config_page.render(configs),
        target_page.BUILTIN_PAGE: target_page.render_builtin(configs),
        target_page.THIRD_PARTY_PAGE: target_page.render_third_party(configs),
        cli_page.PAGE: cli_page.render(root, configs),
        error_page.PAGE: error_page.render(root / "src" / "dltrain"),
    }
    return {"index.md": index(), **out}


def index() -> str:
    lines = [
        GENERATED, "", "# Reference", "",
        "Generated from the code by `scripts/gen_reference.py`, and compared with it by the "
        "test suite (`tests/test_reference.py`), so these pages say what the code does.", "",
    ]  # fmt: skip
    lines += [f"- [{title}]({page}): {what}." for page, (title, what) in PAGES.items()]
    return "\n".join(lines) + "\n"


def write(out: Path, content: dict[str, str]) -> None:
    """Write the pages, and remove any other page left in ``out`` (all are generated)."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.md"):
        if stale.name not in content:
            stale.unlink()
    for name, text in content.items():
        path = out / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder (default docs/reference)")
    args = parser.parse_args(argv)
    write(args.out, pages())
    print(f"wrote {len(PAGES) + 1} pages to {args.out}")
    missing = undocumented(ROOT / "configs")
    for item in missing:
        print(f"undocumented option: {item} (add a comment beside or above it)", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
