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


def descriptions(options: list[Option]) -> dict[str, tuple[str, Option]]:
    """Full option path -> (its comment, the file it is written in): the first file in
    path order; a group's own files before the experiments that override them."""
    found: dict[str, tuple[str, Option]] = {}
    for option in sorted(options, key=lambda o: (o.prefix == "" and o.group != "", str(o.rel))):
        for key in option.config.keys:
            if key.comment:
                found.setdefault(option.full(key), (key.comment, option))
    return found


def described_by(full: str, found: dict[str, tuple[str, Option]]) -> tuple[str, Option] | None:
    """The comment that describes an option, wherever it is written."""
    if full in found:
        return found[full]
    if full.startswith(SWEEP_PARAMS):
        return found.get(full[len(SWEEP_PARAMS) :])
    return None


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
