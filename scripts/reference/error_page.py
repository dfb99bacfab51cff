"""docs/reference/errors.md: every ``error: what — how to fix`` line the runner can print.

Collected statically (``ast``) from the calls that build a user error in src/dltrain
(``ConfigError``/``DataError``/``RunError`` and their subclasses): the literal parts of
both arguments, the computed parts as ``<expression>``. A variable is followed to the
string it was given in the same function or at module level (several assignments: each
variant). Running the code could not reach every error; reading it does.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from reference.markdown import GENERATED, anchor, code

PAGE = "errors.md"
BASES = ("UserError", "ConfigError", "DataError", "RunError")
#: How each kind of error exits (errors.py; Interrupted in checkpointing/signals.py).
EXITS = {"ConfigError": "exit 2", "DataError": "exit 1", "RunError": "exit 1",
         "UserError": "exit 2", "Interrupted": "exit 128 + the signal's number"}  # fmt: skip
#: The longest computed part shown before it is cut.
LONGEST = 48


@dataclass(frozen=True)
class Site:
    module: str
    function: str
    kind: str
    what: str
    fix: str


def parse(src: Path) -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text()) for p in sorted(src.rglob("*.py"))}


def error_classes(trees: list[ast.Module]) -> set[str]:
    """The user-error classes: errors.py's and every subclass defined in the package."""
    found = set(BASES)
    grew = True
    while grew:
        grew = False
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in found:
                    if any(_name(b) in found for b in node.bases):
                        found.add(node.name)
                        grew = True
    return found


def sites(src: Path) -> list[Site]:
    """Every construction of a user error, by module (sorted), then in source order."""
    trees = parse(src)
    kinds = error_classes(list(trees.values())) - {"UserError"}
    out = []
    for path, tree in trees.items():
        module = ".".join(path.relative_to(src.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        constants = _assignments(tree.body)
        for function, scope in _functions(tree):
            local = {**constants, **_assignments(ast.walk(scope))}
            for call in _calls(scope):
                kind = _name(call.func)
                if kind not in kinds or (not call.args and not call.keywords):
                    continue
                args = dict(zip(("what", "fix"), call.args, strict=False))
                args.update({k.arg: k.value for k in call.keywords if k.arg in ("what", "fix")})
                what = _render(args.get("what"), local)
                fix = _render(args.get("fix"), local)
                out.append(Site(module, function, kind, what, fix))
    return out


def _functions(tree: ast.Module):  # noqa: ANN202 - (name, node) pairs
    """Each function (methods as ``Class.method``), innermost owner per call."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield f"{node.name}.{item.name}", item


def _calls(scope: ast.AST) -> list[ast.Call]:
    calls = [n for n in ast.walk(scope) if isinstance(n, ast.Call)]
    return sorted(calls, key=lambda n: (n.lineno, n.col_offset))


def _assignments(nodes) -> dict[str, list[ast.expr]]:  # noqa: ANN001 - statements
    found: dict[str, list[ast.expr]] = {}
    for node in nodes:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            names = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in names:
                if isinstance(target, ast.Name) and _is_text(node.value):
                    found.setdefault(target.id, []).append(node.value)
    return found


def _is_text(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is_text(node.left) or _is_text(node.right)
    return isinstance(node, ast.JoinedStr)


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else ""


def _render(node: ast.expr | None, local: dict[str, list[ast.expr]], depth: int = 0) -> str:
    """The text an argument builds: literals as written, the rest as ``<expression>``."""
    if node is None or (isinstance(node, ast.Constant) and node.value is None):
        return ""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_render(v, local, depth) for v in node.values)
    if isinstance(node, ast.FormattedValue):
        return _placeholder(node.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _render(node.left, local, depth) + _render(node.right, local, depth)
    if isinstance(node, ast.Name) and node.id in local and depth < 3:
        variants = dict.fromkeys(_render(v, local, depth + 1) for v in local[node.id])
        return " | ".join(variants) if len(variants) > 1 else next(iter(variants))
    return _placeholder(node)


def _placeholder(node: ast.expr) -> str:
    source = ast.unparse(node)
    return f"<{source if len(source) <= LONGEST else source[: LONGEST - 3] + '...'}>"


def render(src: Path) -> str:
    found = sites(src)
    modules = sorted({s.module for s in found})
    lines = [
        GENERATED, "", "# Error lines", "",
        "Every mistake the runner reports is one line on stderr, `error: <what> — <how to "
        "fix>`, without a traceback (`HYDRA_FULL_ERROR=1` shows it), and exit code 2 for a "
        "config or usage error, 1 for a failed run. Below: every such line in the code, by "
        "module and function; `<...>` is filled in at run time (a path, a value, a list "
        "of choices), and `a | b` separates variants of one message.", "",
        f"{len(found)} error lines in {len(modules)} modules.", "",
    ]  # fmt: skip
    for module in modules:
        lines += [f"## {module} {{#{anchor(module)}}}", ""]
        for site in (s for s in found if s.module == module):
            line = f"error: {site.what}" + (f" — {site.fix}" if site.fix else "")
            where = f"`{site.function}`, {site.kind} ({EXITS.get(site.kind, 'exit 2')})"
            lines.append(f"- {where}: {code(' '.join(line.split()), in_table=False)}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
