"""User-facing errors and how the CLI prints them.

Every mistake a user can make is reported as one line, ``error: <what> — <how to fix>``,
with exit code 2 for usage/config errors and 1 for runtime failures. Tracebacks are
for bugs, and only shown with ``HYDRA_FULL_ERROR=1``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

USAGE = 2
RUNTIME = 1


class UserError(Exception):
    """A problem the user can fix; ``str()`` is the full ``what — how to fix`` text."""

    exit_code = USAGE
    #: Raised by every DDP rank at once (a collective stop): only global rank 0 prints it.
    all_ranks = False

    def __init__(self, what: str, fix: str | None = None) -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what} — {fix}" if fix else what)


class ConfigError(UserError):
    """The composed configuration is invalid (exit 2)."""


class DataError(UserError):
    """Data is missing or malformed on disk (exit 1)."""

    exit_code = RUNTIME


class RunError(UserError):
    """The run failed for a reason the user can act on (exit 1), e.g. a NaN loss."""

    exit_code = RUNTIME


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def find_user_error(ex: BaseException) -> UserError | None:
    """Walk the ``__cause__``/``__context__`` chain (Hydra's instantiate wraps errors)."""
    seen: set[int] = set()
    cur: BaseException | None = ex
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, UserError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def describe(ex: BaseException) -> tuple[int, str]:
    """Map any exception raised while composing or running to (exit code, message)."""
    user = find_user_error(ex)
    if user is not None:
        return user.exit_code, str(user)
    hydra_msg = _describe_hydra(ex)
    if hydra_msg is not None:
        return USAGE, hydra_msg
    outdated = outdated_dependency()
    if outdated is not None:
        return USAGE, outdated
    name = type(ex).__name__
    return RUNTIME, (
        f"{name}: {_first_line(str(ex))} — this looks like a bug or an unsupported setup; "
        "rerun with HYDRA_FULL_ERROR=1 for the full traceback"
    )


def outdated_dependency(dist: str = "dl-train") -> str | None:
    """The first installed core dependency outside the range pyproject.toml declares.

    Asked only when a run fails in a way no check foresaw: an environment that kept an
    older library (``pip install --no-deps``, a pinned image) fails deep inside it, and
    the fix is an upgrade, not a bug report. Not checked on every start: reading every
    package's metadata costs ~0.1-0.5 s."""
    from importlib import metadata

    from packaging.requirements import Requirement

    try:
        declared = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return None
    for line in declared:
        req = Requirement(line)
        if req.marker is not None:  # an extra's dependency
            continue
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed is None or not req.specifier.contains(installed, prereleases=True):
            found = f"{req.name} {installed} is installed" if installed else None
            found = found or f"{req.name} is missing"
            return (
                f"{found}, but dl-train needs {req.name}{req.specifier} — "
                f"pip install '{req.name}{req.specifier}'"
            )
    return None


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else "(no message)"


def _describe_hydra(ex: BaseException) -> str | None:
    """Turn Hydra/OmegaConf composition errors into one actionable line."""
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    text = str(ex)
    if isinstance(ex, MissingConfigException):
        return _missing_option(ex, text)
    if isinstance(ex, OverrideParseException):
        return (
            f"cannot parse the command-line override: {_first_line(text)} — "
            "write overrides as key=value (quote values with spaces or special characters)"
        )
    m = re.search(r"Could not override '([^']+)'", text)
    if m:
        return _unknown_key(m.group(1), ex)
    m = re.search(r"Could not append to config\. An item is already at '([^']+)'", text)
    if m:
        return f"'{m.group(1)}' already exists — drop the leading '+' to change its value"
    if isinstance(ex, (HydraException, OmegaConfBaseException)):
        cause = ex.__cause__ or ex.__context__
        detail = _first_line(str(cause)) if cause else _first_line(text)
        node = cause if isinstance(cause, OmegaConfBaseException) else ex
        key = getattr(node, "full_key", None)
        if key:  # name the key: "ValidationError raised while composing config:" does not
            where = re.match(r"In '([^']+)'", text)
            place = f" (in {where.group(1)})" if where else ""
            msg = _first_line(str(getattr(node, "msg", None) or detail))
            return (
                f"invalid configuration: {key}{place}: {msg} — "
                "check the overrides (see dl-train --help)"
            )
        return f"invalid configuration: {detail} — check the overrides (see dl-train --help)"
    return None


def _missing_option(ex: BaseException, text: str) -> str:
    options = list(getattr(ex, "options", None) or [])
    m = re.search(r"Could not find '([^']+)'", text)
    missing = m.group(1) if m else getattr(ex, "missing_cfg_file", "?")
    group, _, option = str(missing).rpartition("/")
    if group == "hydra/launcher" and option.startswith("submitit_"):
        return (  # the launcher plugin is an extra (pyproject.toml)
            f"hydra/launcher={option} needs the slurm extra (hydra-submitit-launcher) — "
            "pip install 'dl-train[slurm]'"
        )
    if group and options:
        return (
            f"unknown option '{option}' for {group}{did_you_mean(option, options)} — "
            f"choose one of: {', '.join(sorted(options))}"
        )
    if "Primary config" in text or "config_name" in text:
        return f"{_first_line(text)} — reinstall dl-train (`make install` in a clone)"
    return f"{_first_line(text)} — see `dl-train --help` for the config groups and options"


def _unknown_key(key: str, ex: BaseException) -> str:
    cause = str(ex.__cause__ or ex)
    parent, _, leaf = key.rpartition(".")
    m = re.search(r"full_key: (\S+)", cause)
    full = m.group(1) if m else key
    hint = ""
    known = _keys_under(ex, parent)
    if known:
        hint = did_you_mean(leaf, known)
    return (
        f"unknown config key '{full}'{hint} — check the spelling with `dl-train --cfg job`, "
        f"or add a new key with +{key}=..."
    )


def _keys_under(ex: BaseException, parent: str) -> list[str]:
    """Keys next to the unknown one, when OmegaConf left the parent node on the error."""
    cause = ex.__cause__
    node = getattr(cause, "parent_node", None) if cause is not None else None
    try:
        return [str(k) for k in node.keys()] if node is not None else []
    except Exception:  # noqa: BLE001 - best effort hint only
        return []
