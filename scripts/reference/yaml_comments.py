"""Every key of a YAML config file with its value and the comment that describes it.

PyYAML (already a dependency, through Hydra) gives the structure and the line of every
key; the comments are read from those lines: the text after ``#`` on the key's own line,
or the comment lines directly above it. ruamel.yaml keeps comments too, but it attaches a
comment written above a key to the previous node's end, so assigning it to the right key
needs this same line arithmetic; reading the lines directly avoids a dependency.

A key counts as documented only by its own comment (inline, or on the line right above),
so an option added below a commented one, without a comment of its own, is reported.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: Hydra's instantiate keys: the class they name is documented on the targets page.
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
#: The defaults list composes other configs (documented in their own group).
EXEMPT_TOP = ("defaults",)
_PACKAGE = re.compile(r"#\s*@package\s+(\S+)")
_INTERPOLATION = re.compile(r"\$\{[^{}]+\}")


@dataclass(frozen=True)
class Key:
    """One mapping key of a config file."""

    path: str  # dotted, within the file ("callbacks.plots" is "plots" in callbacks/x.yaml)
    value: Any  # the loaded value (a mapping's is a dict)
    comment: str  # "" when none
    is_mapping: bool  # a block mapping: its keys are listed on their own


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    package: str | None  # "# @package <p>" when given
    header: str  # the comment block before the first key, joined as one text
    header_lines: tuple[str, ...]  # the same lines as written (indented examples kept)
    keys: list[Key]
    defaults: list[Any]  # the defaults list, as loaded


def read_config(path: Path) -> ConfigFile:
    return _parse(path, path.read_text())


@functools.lru_cache(maxsize=1024)
def _parse(path: Path, text: str) -> ConfigFile:
    """Cached by content: the test suite reads the same files several times."""
    lines = text.splitlines()
    package = next((m.group(1) for line in lines[:3] if (m := _PACKAGE.match(line))), None)
    root = yaml.compose(text)
    loaded = yaml.safe_load(text) or {}
    keys: list[Key] = []
    if isinstance(root, yaml.MappingNode):
        _walk(root, loaded, "", lines, keys)
    first = root.start_mark.line if root is not None else len(lines)
    if keys:
        first = min(first, _key_line(root))
    header = _comment_block(lines, first, stop_at_blank=False)
    header_lines = _comment_lines(lines, first)
    defaults = loaded.get("defaults", []) if isinstance(loaded, dict) else []
    return ConfigFile(path, package, header, header_lines, keys, defaults)


def _key_line(root: yaml.MappingNode) -> int:
    return root.value[0][0].start_mark.line if root.value else root.start_mark.line


def _walk(
    node: yaml.MappingNode, values: dict[Any, Any], prefix: str, lines: list[str], out: list[Key]
) -> None:
    """Keys in file order; ``values`` is the node as loaded (its values, typed)."""
    by_text = {str(k): v for k, v in values.items()}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        path = f"{prefix}{key}"
        block = isinstance(value_node, yaml.MappingNode) and not value_node.flow_style
        line = key_node.start_mark.line
        inline = _inline_comment(lines, line, value_node) if not block else _after_key(lines, line)
        comment = inline or _comment_block(lines, line)
        value = by_text.get(key)
        out.append(Key(path, value, comment, block))
        if block:
            _walk(value_node, value if isinstance(value, dict) else {}, f"{path}.", lines, out)


def _inline_comment(lines: list[str], line: int, value: yaml.Node) -> str:
    """The ``# ...`` after the value, on the line where the value ends."""
    if isinstance(value, yaml.ScalarNode) and value.style in ("|", ">"):
        return _after_key(lines, line)  # a block scalar: a comment may follow its indicator
    end = value.end_mark
    if end.column == 0:  # the value ended with its line: its comment is that line's end
        rest = _trailing_comment(lines[end.line - 1]) if end.line > 0 else ""
    else:
        rest = lines[end.line][end.column :] if end.line < len(lines) else ""
    m = re.match(r"\s*#\s?(.*)$", rest)
    return m.group(1).strip() if m else ""


def _trailing_comment(line: str) -> str:
    m = re.search(r"\s#\s?.*$", line)
    return m.group(0) if m else ""


def _after_key(lines: list[str], line: int) -> str:
    """A comment on the line of ``key:`` whose value follows on the next lines."""
    m = re.search(r":\s*(?:[|>][-+]?\d*)?\s+#\s?(.*)$", lines[line])
    return m.group(1).strip() if m else ""


def _comment_block(lines: list[str], line: int, stop_at_blank: bool = True) -> str:
    """The comment lines directly above ``line`` (none when a blank line separates them),
    joined; ``# @package`` directives left out."""
    out: list[str] = []
    i = line - 1
    while i >= 0:
        stripped = lines[i].strip()
        if not stripped.startswith("#"):
            if stripped or stop_at_blank:
                break
            i -= 1
            continue
        if not _PACKAGE.match(stripped):
            out.append(stripped[1:].strip())
        i -= 1
    return " ".join(reversed([s for s in out if s]))


def _comment_lines(lines: list[str], first: int) -> tuple[str, ...]:
    """The leading comment lines, without ``#`` and one space, blank lines dropped."""
    out = []
    for line in lines[:first]:
        stripped = line.strip()
        if stripped.startswith("#") and not _PACKAGE.match(stripped):
            body = stripped[1:]
            out.append(body[1:] if body.startswith(" ") else body)
    return tuple(line for line in out if line.strip())


def needs_comment(key: Key) -> bool:
    """Whether a key must have its own comment: not Hydra's instantiate keys, not the
    defaults list, and not a key whose value only refers to another key (``in_shape:
    ${data.shape}``: that key's comment says what it is)."""
    name = key.path.rsplit(".", 1)[-1]
    if name in HYDRA_KEYS or key.path.split(".")[0] in EXEMPT_TOP:
        return False
    value = key.value
    return not (isinstance(value, str) and _INTERPOLATION.fullmatch(value.strip()))
