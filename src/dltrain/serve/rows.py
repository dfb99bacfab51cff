"""Table rows as the net takes them, from the fitted preprocessing in the card.

The same matrix as ``data/sources/tabular_prep.features`` (numeric columns scaled, missing
indicators, category codes; see that module), written again here in numpy and the
standard library so that serving needs neither pandas nor scipy; a test checks the two
agree on the same rows. Rows come as JSON objects (``dl-serve``) or from a CSV file
(``dl-predict``), whose cells are typed as pandas would read them (a column of numbers is
numbers; ``""``/``NA``/``nan``... are missing; a column of true/false is booleans).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from dltrain.errors import DataError

UNKNOWN, MISSING = 0, 1
#: pandas.read_csv's default missing-value strings.
NA_STRINGS = frozenset(
    "|#N/A|#N/A N/A|#NA|-1.#IND|-1.#QNAN|-NaN|-nan|1.#IND|1.#QNAN|<NA>|N/A|NA|NULL|NaN|"
    "None|n/a|nan|null".split("|")
)
TRUE, FALSE = frozenset({"True", "TRUE", "true"}), frozenset({"False", "FALSE", "false"})
_inv_cdf = np.frompyfunc(NormalDist().inv_cdf, 1, 1)


def read_csv(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV (or ``.tsv``) file, cells typed per column as pandas reads them."""
    try:
        with path.open(newline="") as f:
            raw = list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
    except (OSError, UnicodeDecodeError, csv.Error) as ex:
        raise DataError(f"cannot read {path}: {ex}", "check that it is a valid CSV file") from ex
    columns = list(raw[0]) if raw else []
    typed = {c: _type_column([r[c] for r in raw]) for c in columns}
    return [{c: typed[c][i] for c in columns} for i in range(len(raw))]


def _type_column(cells: list[str | None]) -> list[Any]:
    values = [None if c is None or c in NA_STRINGS else c for c in cells]
    present = [v for v in values if v is not None]
    if present and all(v in TRUE or v in FALSE for v in present):
        return [None if v is None else v in TRUE for v in values]
    try:
        numbers = [None if v is None else float(v) for v in values]
    except ValueError:
        return values
    return [
        None if v is None else int(v) if _is_int_text(s) else v
        for v, s in zip(numbers, values, strict=True)
    ]


def _is_int_text(text: str | None) -> bool:
    return text is not None and text.strip().lstrip("+-").isdigit()


def features(state: dict[str, Any], rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """The float32 input matrix of ``rows`` (dicts of column -> value)."""
    numeric, categorical = list(state["numeric"]), list(state["categorical"])
    indicators = list(state.get("indicators") or [])
    missing = sorted({c for r in rows for c in (*numeric, *categorical) if c not in r})
    if missing:
        raise DataError(
            f"the rows lack feature column(s) {', '.join(missing)}",
            "give every column the model was trained on (the target may be left out)",
        )
    out = np.zeros((len(rows), len(numeric) + len(indicators) + len(categorical)), np.float32)
    gaps = {}
    for j, name in enumerate(numeric):
        values = np.array([_number(r[name], name) for r in rows], dtype=np.float64)
        gaps[name] = np.isnan(values)
        filled = np.where(gaps[name], state["medians"][j], values)
        out[:, j] = _scale(state, j, filled)
    for k, name in enumerate(indicators):
        out[:, len(numeric) + k] = gaps[name]
    offset = len(numeric) + len(indicators)
    for k, name in enumerate(categorical):
        index = {level: i + 2 for i, level in enumerate(state["levels"][name])}
        texts = [as_text(r[name]) for r in rows]
        out[:, offset + k] = [MISSING if t is None else index.get(t, UNKNOWN) for t in texts]
    return out


def _number(value: Any, name: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, (bool, int, float)):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        raise DataError(
            f"column '{name}' should hold numbers but has {value!r}", "fix the value"
        ) from None


def as_text(value: Any) -> str | None:
    """A category value as training's vocabulary holds it (``tabular_prep.as_text``):
    whole floats as integers, missing as ``None``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _scale(state: dict[str, Any], j: int, values: np.ndarray) -> np.ndarray:
    scaling = state.get("scaling", "standard")
    if scaling == "standard":
        return (values - state["centers"][j]) / state["scales"][j]
    if scaling == "quantile":
        return _quantile_normal(values, np.asarray(state["quantiles"][j], dtype=np.float64))
    return values


def _quantile_normal(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """``tabular_prep._quantile_normal`` with the standard library's inverse normal CDF
    in place of scipy's ``ndtri``."""
    probs = np.linspace(0.0, 1.0, len(quantiles))
    up = np.interp(values, quantiles, probs)
    down = -np.interp(-values, -quantiles[::-1], -probs[::-1])
    cdf = np.clip(0.5 * (up + down), 1e-7, 1 - 1e-7)
    return _inv_cdf(cdf).astype(np.float64) if cdf.size else cdf


def outputs(state: dict[str, Any], raw: np.ndarray) -> np.ndarray:
    """Regression: the net's standardised output on the target's own scale."""
    values = raw.reshape(-1).astype(np.float64) * state["target_std"] + state["target_mean"]
    return np.exp(values) if state.get("target_transform") == "log" else values
