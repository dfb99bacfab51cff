"""docs/reference/targets.md and third-party-targets.md: every class (or function) a
``_target_`` in configs/ names, with its parameters, their types, allowed values and
defaults, read by the same code that checks a config (``config/signature_reading.py``,
ranges of third-party classes from ``config/limits.py``; the top-level settings from
``config/run_options.py``), so the page says what the check accepts."""

from __future__ import annotations

import inspect
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from dltrain.config import run_options, targets
from dltrain.config.signature_reading import FORWARDED, Signature, read_signature, signature_of
from dltrain.config.type_words import _bounds, describe, show  # the check's own words
from reference.markdown import GENERATED, anchor, code, table, text, yaml_value

BUILTIN_PAGE, THIRD_PARTY_PAGE = "targets.md", "third-party-targets.md"
#: The libraries whose classes the third-party page reads: their versions head it, since
#: their signatures change with them (tests/test_reference.py compares that page only
#: where the same versions are installed).
LIBRARIES = ("torch", "lightning")


def builtin_targets(configs: Path) -> dict[str, list[str]]:
    """Every ``_target_`` written in configs/ -> the options that name it (``model=mlp``)."""
    found: dict[str, set[str]] = {}
    for path in sorted(configs.rglob("*.yaml")):
        rel = path.relative_to(configs)
        where = "/".join(rel.parts[:-1]) + "=" + rel.stem if len(rel.parts) > 1 else rel.name
        for target in _targets(yaml.safe_load(path.read_text())):
            found.setdefault(target, set()).add(where)
    return {t: sorted(found[t]) for t in sorted(found)}


def _targets(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [str(node["_target_"])] if "_target_" in node else []
        return own + [t for v in node.values() for t in _targets(v)]
    if isinstance(node, list):
        return [t for v in node for t in _targets(v)]
    return []


def library_versions() -> str:
    return ", ".join(f"{name} {metadata.version(name)}" for name in LIBRARIES)


def render_builtin(configs: Path) -> str:
    found = {t: w for t, w in builtin_targets(configs).items() if t.startswith("dltrain.")}
    lines = [
        GENERATED, "", "# Built-in classes", "",
        "Every `dltrain` class or function a `_target_` in `configs/` names, with the "
        "parameters a config may set: their type and allowed values (as the config check "
        "reads them from the signature and refuses anything else, before any work starts) "
        "and defaults. The classes of torch, Lightning and the standard library are on "
        f"[Third-party classes]({THIRD_PARTY_PAGE}).", "",
        "## Top-level settings {#top-level-settings}", "",
        "Keys of `configs/train.yaml` without a `_target_`, checked against "
        "`dltrain.config.run_options` (the same check as a class's arguments).", "",
    ]  # fmt: skip
    for path, declared in run_options.NODES.items():
        title = f"`{path}`" if path else "train.yaml's top level"
        lines += [f"### {title} {{#{anchor('settings', path or 'top')}}}", ""]
        lines += _params(read_signature(declared, ""), given=())
    lines += [
        "## Classes", "",
        "The runner passes the module's class "
        + ", ".join(f"`{g}`" for g in targets.MODULE_GIVEN)
        + " itself, when its constructor takes them; a data config may also hold "
        + ", ".join(f"`{k}`" for k in (*targets.DATA_DESCRIPTIVE, *targets.DATA_RUNNER))
        + " (read by the other configs and the runner, not passed on).", "",
    ]  # fmt: skip
    for target, where in found.items():
        lines += _target(target, where)
    return "\n".join(lines).rstrip() + "\n"


def render_third_party(configs: Path) -> str:
    found = {t: w for t, w in builtin_targets(configs).items() if not t.startswith("dltrain.")}
    lines = [
        GENERATED, "", "# Third-party classes", "",
        "The classes of torch, Lightning and the standard library that a `_target_` in "
        "`configs/` names, as the config check reads them: parameters, types, the ranges "
        "`dltrain.config.limits` adds, defaults. Their signatures come from the installed "
        "libraries; this page was generated with:", "",
        f"Versions: {library_versions()}.", "",
    ]  # fmt: skip
    for target, where in found.items():
        lines += _target(target, where)
    return "\n".join(lines).rstrip() + "\n"


def _target(target: str, where: list[str]) -> list[str]:
    lines = [f"### {target} {{#{anchor(target)}}}", ""]
    obj = targets.locate(target)
    doc = inspect.getdoc(obj) or ""
    if doc and target.startswith("dltrain."):
        lines += [text(" ".join(doc.split("\n\n")[0].split())), ""]
    lines += ["Named by: " + ", ".join(_option_link(w) for w in where) + ".", ""]
    sig = signature_of(target)
    if sig is None:
        return [*lines, "No signature Python can read (a C type): its own checks apply.", ""]
    if sig.open:
        lines += ["Takes `**kwargs` it passes on: keys besides these are let through.", ""]
    given = targets.MODULE_GIVEN if any(w.startswith("module=") for w in where) else ()
    return [*lines, *_params(sig, given)]


def _option_link(where: str) -> str:
    if "=" not in where:
        return f"[{where}]({'configs.md'}#{anchor('config', where.removesuffix('.yaml'))})"
    group, name = where.split("=")
    return f"[{where}](configs.md#{anchor(group, name)})"


def _params(sig: Signature, given: tuple[str, ...]) -> list[str]:
    rows = []
    for name, param in sig.params.items():
        if name in given:
            kind, default = "given by the runner", ""
        else:
            kind, default = _type_words(param.annotation), _default(param.default)
        rows.append((code(name), text(kind, in_table=True), default))
    return table(("parameter", "type and allowed values", "default"), rows) or ["(none)", ""]


def _type_words(annotation: Any) -> str:
    if annotation is Any:
        return "not checked (a nested `_target_` node is checked on its own)"
    bounds = _bounds(annotation)
    return describe(annotation) + (f", {' and '.join(bounds)}" if bounds else "")


def _default(default: Any) -> str:
    if default is inspect.Parameter.empty:
        return "required"
    if default is FORWARDED:
        return "required (or passed on positionally)"
    if isinstance(default, tuple):
        default = list(default)
    if hasattr(default, "value") and not isinstance(default, (int, float, str)):
        default = default.value  # an enum member
    plain = (type(None), bool, int, float, str, list, dict)
    shown = yaml_value(default) if isinstance(default, plain) else show(default)
    if re.search(r" at 0x[0-9a-f]+", shown) or "\n" in shown:
        shown = type(default).__name__  # an object: its address would change every run
    return code(shown)
