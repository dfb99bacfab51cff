"""Search spaces: YAML (or Hydra sweep syntax) to Optuna distributions, and sampled
values back to command-line overrides.

Two spellings are accepted for each key of ``hydra.sweeper.params``:

* a mapping, the explicit form::

      optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
      model.dropout: {type: float, low: 0.0, high: 0.5, step: 0.1}
      data.batch_size: {type: int, low: 32, high: 256, step: 32}
      model.hidden: {type: categorical, choices: [[64], [256, 128]]}

* a Hydra sweep string, as the older ``hydra-optuna-sweeper`` took them (also on the
  command line): ``choice(a,b)`` or ``a,b``, ``range(lo,hi[,step])`` (``hi`` excluded),
  ``interval(lo,hi)`` and ``tag(log, interval(lo,hi))``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dltrain.errors import ConfigError

KINDS = ("float", "int", "categorical")
# Optuna's categorical distribution stores only these; other choices (lists, mappings)
# are kept as their override text and parsed back by Hydra.
PRIMITIVES = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class Dimension:
    """One searched config key: its kind and bounds (or choices)."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def distribution(self) -> Any:
        from optuna import distributions as d

        if self.kind == "float":
            return d.FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return d.IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)
        return d.CategoricalDistribution(self.choices)

    def grid(self) -> list[Any]:
        """Every value of this dimension, for the grid sampler."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.step is None and self.kind == "float":
            raise ConfigError(
                f"the grid sampler cannot enumerate the continuous range of '{self.key}'",
                "give it a step (step: 0.1) or list its values (type: categorical)",
            )
        step = self.step or 1
        count = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        values = [self.low + i * step for i in range(count)]
        return [round(v, 12) if self.kind == "float" else int(v) for v in values]

    def example(self) -> Any:
        """A value inside the space, to check the key composes before the study starts."""
        return self.choices[0] if self.kind == "categorical" else self.low


def parse_space(params: Mapping[str, Any]) -> list[Dimension]:
    """``hydra.sweeper.params`` to dimensions, with a ``ConfigError`` for each mistake."""
    dims = []
    for key, spec in params.items():
        if isinstance(spec, Mapping):
            dims.append(_from_mapping(str(key), spec))
        elif isinstance(spec, str):
            dims.append(from_sweep_string(str(key), spec))
        else:
            raise ConfigError(
                f"search space '{key}': cannot read {spec!r}",
                "write {type: float, low: .., high: ..} or choice(a,b) / interval(lo,hi)",
            )
    return dims


def _from_mapping(key: str, spec: Mapping[str, Any]) -> Dimension:
    kind = str(spec.get("type", "categorical" if "choices" in spec else "float"))
    allowed = {"type", "low", "high", "step", "log", "choices"}
    unknown = sorted(set(spec) - allowed)
    if kind not in KINDS or unknown:
        what = f"unknown type '{kind}'" if kind not in KINDS else f"unknown field '{unknown[0]}'"
        raise ConfigError(
            f"search space '{key}': {what}",
            f"use type: float|int|categorical with fields {', '.join(sorted(allowed))}",
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not choices:
            raise ConfigError(
                f"search space '{key}': a categorical needs choices",
                "list them: {type: categorical, choices: [a, b]}",
            )
        return Dimension(key, kind, choices=tuple(_storable(c) for c in choices))
    if spec.get("low") is None or spec.get("high") is None:
        raise ConfigError(
            f"search space '{key}': a {kind} needs low and high",
            f"write {{type: {kind}, low: .., high: ..}}",
        )
    return _numeric(
        key, kind, spec["low"], spec["high"], spec.get("step"), bool(spec.get("log", False))
    )


def _numeric(key: str, kind: str, low: Any, high: Any, step: Any, log: bool) -> Dimension:
    cast = float if kind == "float" else int
    low, high = cast(low), cast(high)
    step = cast(step) if step is not None else None
    if low > high or (log and low <= 0) or (log and step is not None):
        raise ConfigError(
            f"search space '{key}': invalid range low={low}, high={high}, step={step}, log={log}",
            "low must not exceed high; log needs low > 0 and no step",
        )
    return Dimension(key, kind, low=low, high=high, step=step, log=log)


def from_sweep_string(key: str, text: str) -> Dimension:
    """``choice(..)``, ``a,b``, ``range(..)``, ``interval(..)``, ``tag(log, ..)``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = OverridesParser.create().parse_override(f"{key}={text}")
    return from_override(override)


def from_override(override: Any) -> Dimension:
    """A parsed Hydra sweep override (command line or YAML string) as a dimension."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    key = override.get_key_element()
    value = override.value()
    log = "log" in getattr(value, "tags", set())
    if isinstance(value, ChoiceSweep):
        return Dimension(key, "categorical", choices=tuple(_storable(c) for c in value.list))
    if isinstance(value, RangeSweep):
        ints = all(isinstance(v, int) for v in (value.start, value.stop, value.step))
        if ints:  # range() excludes its stop, like Python's
            return _numeric(key, "int", value.start, value.stop - value.step, value.step, log)
        return Dimension(key, "categorical", choices=tuple(value.range()))
    if isinstance(value, IntervalSweep):
        ints = isinstance(value.start, int) and isinstance(value.end, int)
        return _numeric(key, "int" if ints else "float", value.start, value.end, None, log)
    raise ConfigError(
        f"search space '{key}': '{override.input_line}' is not a sweep",
        "use choice(a,b), range(lo,hi), interval(lo,hi) or tag(log, interval(lo,hi))",
    )


def _storable(choice: Any) -> Any:
    """Optuna keeps primitive choices as they are; others as their override text."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(choice, (DictConfig, ListConfig)):
        choice = OmegaConf.to_container(choice)
    return choice if isinstance(choice, PRIMITIVES) else format_value(choice)


def suggest(trial: Any, dims: Iterable[Dimension]) -> dict[str, Any]:
    """Ask the trial for a value of every dimension (``trial._suggest`` would be the
    one-call form, but it is private: the public suggest_* calls take the same bounds)."""
    params = {}
    for dim in dims:
        if dim.kind == "float":
            params[dim.key] = trial.suggest_float(
                dim.key, dim.low, dim.high, step=dim.step, log=dim.log
            )
        elif dim.kind == "int":
            params[dim.key] = trial.suggest_int(
                dim.key, dim.low, dim.high, step=dim.step or 1, log=dim.log
            )
        else:
            params[dim.key] = trial.suggest_categorical(dim.key, dim.choices)
    return params


def to_overrides(params: Mapping[str, Any]) -> list[str]:
    """Sampled values as ``key=value`` overrides. Values that were stored as override text
    (list choices) are written back as they are."""
    out = []
    for key, value in params.items():
        text = value if isinstance(value, str) and _is_override_text(value) else None
        out.append(f"{key}={text if text is not None else format_value(value)}")
    return out


def to_plain(value: Any) -> Any:
    """A stored value as the YAML value it stands for (``"[64,32]"`` -> ``[64, 32]``)."""
    if isinstance(value, str) and _is_override_text(value):
        import yaml

        return yaml.safe_load(value)
    return value


def _is_override_text(value: str) -> bool:
    return value.startswith(("[", "{"))


_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_./\-]*")
_RESERVED = {"true", "false", "null", "none", "nan", "inf"}


def format_value(value: Any) -> str:
    """A Python value in Hydra's override grammar (quoting strings that need it)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _BARE.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    return quote(text)


def quote(text: str) -> str:
    """Single-quoted for Hydra's grammar (backslashes and quotes escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
