"""docs/reference/configs.md: every config group of configs/, each option file with its
keys, the values it sets and the comments that describe them."""

from __future__ import annotations

import re
from pathlib import Path

from reference.markdown import GENERATED, anchor, code, table, text, yaml_value
from reference.option_docs import (
    Found,
    Option,
    described_by,
    descriptions,
    preferences,
    read_options,
)
from reference.yaml_comments import HYDRA_KEYS, Key

PAGE = "configs.md"
#: A value that only refers to another key: ``${monitor}``.
_REFERENCE = re.compile(r"\$\{([\w.]+)\}")


def target_link(target: str) -> str:
    """The targets page that documents a ``_target_``, and its anchor."""
    page = "targets.md" if target.startswith("dltrain.") else "third-party-targets.md"
    return f"[{code(target)}]({page}#{anchor(target)})"


def render(configs: Path) -> str:
    options = read_options(configs)
    found = descriptions(options)
    primary = [o for o in options if not o.group]
    groups = sorted({o.group for o in options if o.group})
    lines = [
        GENERATED,
        "",
        "# Config groups and options",
        "",
        "Every file of `configs/`: the primary configs (one per command), then each group "
        "with its options (`group=option` on the command line). For each key: the value the "
        "file sets and the comment written beside or above it. A key without a comment of "
        "its own shows the description of that option written in another file (*as in ...*). "
        "Keys that build a class (`_target_`) link to its signature and allowed values.",
        "",
        "## Primary configs",
        "",
    ]
    for option in primary:
        prefer = preferences(option, options)
        title, ident = f"{option.name}.yaml", anchor("config", option.name)
        lines += _option(option, found, prefer, title, ident)
    lines += ["## Groups", ""]
    for group in groups:
        members = [o for o in options if o.group == group]
        lines += [f"### {group} {{#{anchor('group', group)}}}", ""]
        names = ", ".join(f"[{o.name}](#{anchor(group, o.name)})" for o in members)
        lines += [f"Options: {names}.", ""]
        for option in members:
            title = f"{group}={option.name}"
            prefer = preferences(option, options)
            lines += _option(option, found, prefer, title, anchor(group, option.name), "####")
    return "\n".join(lines).rstrip() + "\n"


def _option(
    option: Option, found: Found, prefer: list[str], title: str, ident: str,
    level: str = "###",
) -> list[str]:  # fmt: skip
    config = option.config
    where = f"`configs/{option.rel.as_posix()}`"
    if config.package:
        where += f", package `{config.package}`"
    lines = [f"{level} {title} {{#{ident}}}", "", where, ""]
    lines += _header(config.header_lines)
    if config.defaults:
        composed = ", ".join(code(_default(d), in_table=False) for d in config.defaults)
        lines += [f"Composes: {composed}.", ""]
    rows = [r for key in config.keys if (r := _row(option, key, found, prefer)) is not None]
    return [*lines, *table(("key", "value", "description"), rows)]


def _header(comment: tuple[str, ...]) -> list[str]:
    """The file's leading comment: prose as paragraphs, indented lines (example
    commands) as a code block."""
    out: list[str] = []
    prose: list[str] = []
    code_lines: list[str] = []

    def flush() -> None:
        if prose:
            out.extend([text(" ".join(prose)), ""])
            prose.clear()
        if code_lines:
            out.extend(["```text", *code_lines, "```", ""])
            code_lines.clear()

    for line in comment:
        if line.startswith("  "):
            if prose:
                flush()
            code_lines.append(line.strip())
        else:
            if code_lines:
                flush()
            prose.append(line.strip())
    flush()
    return out


def _default(entry: object) -> str:
    if isinstance(entry, dict):
        return ", ".join(f"{k}: {yaml_value(v)}" for k, v in entry.items())
    return str(entry)


def _row(
    option: Option, key: Key, found: Found, prefer: list[str]
) -> tuple[str, ...] | None:
    if key.path.split(".")[0] == "defaults":
        return None
    name = key.path.rsplit(".", 1)[-1]
    if name == "_target_":
        return (code(key.path), target_link(str(key.value)), "the class (or function) it builds")
    if name in HYDRA_KEYS:
        return (code(key.path), code(yaml_value(key.value)), "Hydra's instantiate setting")
    value = "" if key.is_mapping else code(yaml_value(key.value))
    described = described_by(option.full(key), found, prefer)
    # The file's leading comment also sits right above its first key: shown as the
    # header, so that key takes the option's own description where one exists.
    is_header = key.comment == option.config.header and described is not None
    if key.comment and not (is_header and described[1] is not option):
        return (code(key.path), value, text(key.comment, in_table=True))
    if key.is_mapping:
        return None
    if described is None:
        refers = isinstance(key.value, str) and _REFERENCE.fullmatch(key.value.strip())
        return (code(key.path), value, f"the value of {code(refers[1])}" if refers else "")
    comment, source = described
    ref = f"{source.group}={source.name}" if source.group else f"{source.name}.yaml"
    return (code(key.path), value, f"*as in {ref}:* {text(comment, in_table=True)}")
