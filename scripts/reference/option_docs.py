"""Where each option of configs/ is described, and which options are not.

An option is named by its full dotted path in the composed config: ``model.dropout`` for
``dropout`` in configs/model/mlp.yaml, ``trainer.max_epochs`` in an experiment (package
``_global_``), ``data.augment.flip`` in configs/augment/*.yaml (package ``data``). Its
meaning is written once, as a comment beside or above it in any config file that sets it;
other files that set the same option may rely on that comment (``dropout`` means the same
in every model config, an experiment's ``trainer.max_epochs`` what the trainer group's
says). A sweep's search space ``hydra.sweeper.params.<option>`` is described by
``<option>``. An option described nowhere is reported (``undocumented``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reference.yaml_comments import ConfigFile, Key, needs_comment, read_config

SWEEP_PARAMS = "hydra.sweeper.params."


@dataclass(frozen=True)
class Option:
    """A config file of ``configs/`` and where its keys sit in the composed config."""

    rel: Path  # relative to configs/: "model/mlp.yaml"
    group: str  # "model", "data/tokenizer"; "" for the primary configs
    name: str  # "mlp"
    prefix: str  # "model." (what the file's keys sit under)
    config: ConfigFile

    def full(self, key: Key) -> str:
        return f"{self.prefix}{key.path}"


def read_options(configs: Path) -> list[Option]:
    """Every YAML file under ``configs`` (sorted by path)."""
    out = []
    for path in sorted(configs.rglob("*.yaml")):
        rel = path.relative_to(configs)
        config = read_config(path)
        group = "/".join(rel.parts[:-1])
        if not group or config.package == "_global_":
            prefix = ""
        elif config.package:
            prefix = f"{config.package}."
        else:
            prefix = group.replace("/", ".") + "."
        out.append(Option(rel, group, rel.stem, prefix, config))
    return out


Found = dict[str, list[tuple[str, Option]]]


def descriptions(options: list[Option]) -> Found:
    """Full option path -> (comment, the file it is written in) for every file that
    describes it: a group's own files first (in path order), then the experiments and
    sweeps that override them."""
    found: Found = {}
    for option in sorted(options, key=lambda o: (o.prefix == "" and o.group != "", str(o.rel))):
        for key in option.config.keys:
            if key.comment:
                found.setdefault(option.full(key), []).append((key.comment, option))
    return found


def described_by(full: str, found: Found, prefer: Sequence[str] = ()) -> tuple[str, Option] | None:
    """The comment that describes an option: written for one of the ``prefer`` options
    (``model=mlp``: those a file composes, which the key then means), else the first."""
    if full not in found and full.startswith(SWEEP_PARAMS):
        full = full[len(SWEEP_PARAMS) :]
    written = found.get(full)
    if not written:
        return None
    for choice in prefer:
        for comment, option in written:
            if f"{option.group}={option.name}" == choice:
                return comment, option
    return written[0]


def preferences(option: Option, options: list[Option]) -> list[str]:
    """``group=name`` of the options composed with ``option``: its own defaults list
    first, then the primary config's (train.yaml)."""
    primary = next((o for o in options if not o.group and o.name == "train"), None)
    out = _choices(option)
    return out + (_choices(primary) if primary is not None else [])


def _choices(option: Option) -> list[str]:
    out = []
    for entry in option.config.defaults:
        if isinstance(entry, str) and entry != "_self_" and option.group:
            out.append(f"{option.group}={entry}")
        elif isinstance(entry, dict):
            for key, value in entry.items():
                group = str(key).removeprefix("override ").strip().lstrip("/").split("@")[0]
                if value is not None:
                    out.append(f"{group}={value}")
    return out


def undocumented(configs: Path) -> list[str]:
    """``configs/<file>:<key>`` for each option no comment describes, in file order."""
    options = read_options(configs)
    found = descriptions(options)
    out = []
    for option in options:
        for key in option.config.keys:
            if key.is_mapping or key.comment or not needs_comment(key):
                continue
            if described_by(option.full(key), found) is None:
                out.append(f"configs/{option.rel.as_posix()}:{key.path}")
    return out
