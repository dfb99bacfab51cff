"""docs/reference/cli.md: every command of pyproject.toml's ``[project.scripts]`` (a new
entry point appears here without a change to this file), its ``--help`` text and, for
the Hydra commands, the top-level keys of its primary config."""

from __future__ import annotations

import contextlib
import gc
import importlib
import inspect
import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from reference.markdown import GENERATED, anchor, text

#: Where Hydra's --help starts printing the composed config: the config page has it.
PAGE = "cli.md"
HYDRA_CONFIG = "== Config =="
#: Help text wraps at the terminal's width: fixed here so the page is the same anywhere.
COLUMNS = "100"


def commands(root: Path) -> dict[str, str]:
    """Command -> ``module:function``, as pyproject.toml declares them (sorted); on Python
    3.10 (no tomllib), as the installed package's metadata does."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        from importlib import metadata

        points = metadata.distribution("dl-train").entry_points
        scripts = {p.name: p.value for p in points if p.group == "console_scripts"}
    else:
        toml = (root / "pyproject.toml").read_text()
        scripts = tomllib.loads(toml)["project"]["scripts"]
    return dict(sorted(scripts.items()))


def entry_point(spec: str):  # noqa: ANN201 - any callable
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def help_text(command: str, spec: str) -> str:
    """What ``<command> --help`` prints, run in this process (a subprocess per command
    would cost a Python start and a Hydra import each). The entry point's changes to the
    environment, ``sys.argv``, ``sys.path``, the working directory and the garbage
    collector are undone afterwards. It runs in an empty folder, so the page is the same
    wherever the script runs."""
    main = entry_point(spec)
    saved_env, saved_argv, saved_path = dict(os.environ), sys.argv[:], sys.path[:]
    gc_on, cwd = gc.isenabled(), os.getcwd()
    out = io.StringIO()
    try:
        os.environ["COLUMNS"] = COLUMNS
        sys.argv = [command, "--help"]
        _clear_hydra()  # a Hydra app initialises Hydra itself; one left initialised refuses
        with tempfile.TemporaryDirectory() as empty:
            os.chdir(empty)  # a project's ./configs where it runs would join the groups
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                with contextlib.suppress(SystemExit):
                    main()
            os.chdir(cwd)
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv, sys.path[:] = saved_argv, saved_path
        if gc_on:
            gc.enable()
        _clear_hydra()
    return out.getvalue()


@contextlib.contextmanager
def _groups_listed_once() -> Iterator[None]:
    """Hydra's --help lists every group's options (its own and the app's), each listing
    about a second of config copies; the Hydra commands share one config search path, so
    the listings are the same for all of them: made once while the pages are written.
    (Hydra's ``format_config_groups`` is internal: where it is missing, nothing is kept.)"""
    from hydra._internal.hydra import Hydra

    listed = getattr(Hydra, "format_config_groups", None)
    if listed is None:
        yield
        return
    kept: dict[tuple[str, bool], str] = {}

    def once(self: Hydra, predicate: Callable[[str], bool], compact: bool = True) -> str:
        key = (predicate.__name__, compact)
        if key not in kept:
            kept[key] = listed(self, predicate, compact)
        return kept[key]

    Hydra.format_config_groups = once
    try:
        yield
    finally:
        Hydra.format_config_groups = listed


def _clear_hydra() -> None:
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()


def render(root: Path, configs: Path) -> str:
    found = commands(root)
    lines = [
        GENERATED, "", "# Commands", "",
        "Every command `pip install dl-train` puts on the path (pyproject.toml's "
        "`[project.scripts]`), with what `--help` prints. The Hydra commands take "
        "`key=value` overrides and `group=option` choices of their primary config "
        "([Config groups and options](configs.md)); their `--help` also prints the composed "
        "config, left out here.", "",
        "| command | what it does |", "|---|---|",
    ]  # fmt: skip
    for command, spec in found.items():
        doc = (inspect.getdoc(entry_point(spec)) or "").split("\n\n")[0]
        lines.append(f"| [{command}](#{anchor(command)}) | {text(' '.join(doc.split()), True)} |")
    lines.append("")
    with _groups_listed_once():
        for command, spec in found.items():
            lines += _command(command, spec, configs)
    return "\n".join(lines).rstrip() + "\n"


def _command(command: str, spec: str, configs: Path) -> list[str]:
    lines = [f"## {command} {{#{anchor(command)}}}", "", f"Entry point: `{spec}`.", ""]
    shown = help_text(command, spec)
    hydra = HYDRA_CONFIG in shown
    shown = shown.split(HYDRA_CONFIG)[0].rstrip()
    lines += ["```text", f"$ {command} --help", *shown.splitlines(), "```", ""]
    primary = configs / f"{command.removeprefix('dl-')}.yaml"
    if hydra and primary.exists():
        lines += [
            f"Its primary config is `configs/{primary.name}`: its keys, defaults and what "
            f"they do are in [{primary.name}](configs.md#{anchor('config', primary.stem)}).",
            "",
        ]
    return lines
