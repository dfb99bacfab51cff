"""Tabular preprocessing: column types, missing values, scaling, vocabularies, target.

Fitted on the training split only, then applied unchanged to validation, test and new
rows (``dl-eval``, ``dl-predict``). The fitted state is plain values (lists, strings,
numbers), so it travels inside ``weights_only`` checkpoints.

Hand-written rather than scikit-learn's ``ColumnTransformer``: its fitted objects are
pickles (not allowed in ``weights_only`` checkpoints) and it has no "unknown" level that
embedding tables can index. Layout of the transformed matrix, one float32 row a sample::

    [numeric columns (scaled) | missing indicators | categorical codes (as floats)]

Codes: 0 = a level unseen in training ("unknown"), 1 = missing, 2.. = training levels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dltrain.errors import ConfigError, DataError

UNKNOWN, MISSING = 0, 1
#: Integer columns with at most this many distinct values are categories.
MAX_INT_LEVELS = 10
#: An integer target with more distinct values than this is a regression target.
MAX_CLASS_LEVELS = 20
SCALINGS = ("standard", "quantile", "none")
TASKS = ("classification", "regression")
#: Evenly spaced probabilities of the stored quantiles (quantile scaling).
N_QUANTILES = 1000


@dataclass
class TabularState:
    """Everything fitted on the training split (plain values)."""

    target: str
    task: str
    numeric: list[str]
    categorical: list[str]
    scaling: str = "standard"
    medians: list[float] = field(default_factory=list)
    centers: list[float] = field(default_factory=list)  # standard scaling: mean
    scales: list[float] = field(default_factory=list)  # standard scaling: std
    quantiles: list[list[float]] = field(default_factory=list)  # quantile scaling
    indicators: list[str] = field(default_factory=list)  # numeric columns with a flag
    levels: dict[str, list[str]] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)  # classification
    target_transform: str | None = None  # regression: None | "log"
    target_mean: float = 0.0  # regression: of the (transformed) training target
    target_std: float = 1.0
    #: The rows it was fitted on: the table's fingerprint and each split's row keys
    #: (``tabular_split.record``); empty in checkpoints written before it was stored.
    split: dict[str, Any] = field(default_factory=dict)

    @property
    def n_numeric(self) -> int:
        """Numeric inputs of the net: scaled columns plus missing indicators."""
        return len(self.numeric) + len(self.indicators)

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table sizes: the training levels plus unknown and missing."""
        return [len(self.levels[c]) + 2 for c in self.categorical]

    @property
    def width(self) -> int:
        return self.n_numeric + len(self.categorical)

    def feature_spec(self) -> dict[str, Any]:
        """What a tabular net needs to know of its inputs (stored in the model config)."""
        return {"numeric": self.n_numeric, "categories": self.cardinalities}

    def feature_types(self) -> list[str]:
        """Per column of the matrix: ``"q"`` (quantitative) or ``"c"`` (categorical)."""
        return ["q"] * self.n_numeric + ["c"] * len(self.categorical)

    def feature_names(self) -> list[str]:
        return [*self.numeric, *(f"{c}_missing" for c in self.indicators), *self.categorical]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TabularState:
        return cls(**state)


# ---- column types ------------------------------------------------------------------------


def infer_columns(
    frame: pd.DataFrame,
    target: str,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    drop: Sequence[str] = (),
) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns: declared ones as given, the rest inferred
    (numbers are numeric; strings, booleans and integers with at most
    ``MAX_INT_LEVELS`` distinct values are categories)."""
    declared_num, declared_cat = list(numeric or []), list(categorical or [])
    for name in [*declared_num, *declared_cat, *drop]:
        if name not in frame.columns:
            raise ConfigError(
                f"column '{name}' named in the data config is not in the table",
                f"use one of: {', '.join(map(str, frame.columns))}",
            )
    both = set(declared_num) & set(declared_cat)
    if both:
        raise ConfigError(
            f"column(s) {', '.join(sorted(both))} declared both numeric and categorical",
            "list each column in data.numeric or data.categorical, not both",
        )
    out_num, out_cat = [], []
    for name in frame.columns:
        if name == target or name in drop:
            continue
        if name in declared_num:
            out_num.append(name)
        elif name in declared_cat:
            out_cat.append(name)
        elif _is_categorical(frame[name]):
            out_cat.append(name)
        else:
            out_num.append(name)
    if not out_num and not out_cat:
        raise ConfigError(
            f"the table has no feature columns besides the target '{target}'",
            "point data.path at a table with feature columns, or drop fewer (data.drop)",
        )
    return out_num, out_cat


def _is_categorical(column: pd.Series) -> bool:
    column = _as_read(column)
    if pd.api.types.is_bool_dtype(column):
        return True
    if pd.api.types.is_integer_dtype(column):
        return column.nunique(dropna=True) <= MAX_INT_LEVELS
    return not pd.api.types.is_numeric_dtype(column)


def _as_read(column: pd.Series) -> pd.Series:
    """The column as a file of these rows alone would have been read: text whose values
    are all numbers is numbers (one text value in a row outside the training split makes
    pandas read the whole column as text)."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column
    values = column.dropna()
    if values.empty or values.map(lambda v: isinstance(v, (bool, np.bool_))).any():
        return column
    numbers = pd.to_numeric(values, errors="coerce")
    return column if numbers.isna().any() else pd.to_numeric(column)


def infer_task(column: pd.Series) -> tuple[str, str]:
    """(task, reason) from the target column's values."""
    levels = column.nunique(dropna=True)
    if pd.api.types.is_float_dtype(column):
        if (column.dropna() == column.dropna().round()).all() and levels <= MAX_CLASS_LEVELS:
            return "classification", f"{levels} distinct whole numbers"
        return "regression", f"{levels} distinct numbers"
    if pd.api.types.is_integer_dtype(column):  # (booleans are not integers here)
        if levels > MAX_CLASS_LEVELS:
            return "regression", f"{levels} distinct integers"
        return "classification", f"{levels} distinct integers"
    return "classification", f"{levels} distinct values"


def as_text(column: pd.Series) -> pd.Series:
    """Category values as strings (NaN kept): ``1.0`` read from a CSV with gaps is ``"1"``,
    like the ``1`` of a column without gaps, so vocabularies match across files."""

    def one(v: Any) -> Any:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return np.nan
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        return str(v)

    return column.astype(object).map(one)


# ---- fitting -------------------------------------------------------------------------------


def fit(
    train: pd.DataFrame,
    target: str,
    task: str,
    numeric: list[str],
    categorical: list[str],
    scaling: str = "standard",
    target_transform: str | None = None,
) -> TabularState:
    """Fit medians, scaling, vocabularies and the target encoding on the training rows."""
    state = TabularState(
        target=target,
        task=task,
        numeric=numeric,
        categorical=categorical,
        scaling=scaling,
        target_transform=target_transform,
    )
    for name in numeric:
        values = _numbers(train[name], name)
        finite = values[~np.isnan(values)]
        median = float(np.median(finite)) if finite.size else 0.0
        filled = np.where(np.isnan(values), median, values)
        state.medians.append(median)
        if np.isnan(values).any():
            state.indicators.append(name)
        if scaling == "standard":
            std = float(filled.std())
            state.centers.append(float(filled.mean()))
            state.scales.append(std if std > 0 else 1.0)  # a constant column stays 0
        elif scaling == "quantile":
            probs = np.linspace(0.0, 1.0, N_QUANTILES)
            state.quantiles.append(np.quantile(filled, probs).tolist())
    for name in categorical:
        text = as_text(train[name])
        levels = sorted(text.dropna().unique().tolist())
        if len(levels) < 2:
            shown = f"('{levels[0]}')" if levels else "(all values missing)"
            raise DataError(
                f"category column '{name}' has a single level {shown} in the training split",
                f"drop it (data.drop=[{name}]) or declare it numeric (data.numeric=[{name}])",
            )
        state.levels[name] = levels
    y = train[target]
    if task == "classification":
        state.classes = sorted(as_text(y).dropna().unique().tolist())
        if len(state.classes) < 2:
            raise DataError(
                f"target '{target}' has a single class in the training split",
                "classification needs at least two classes; check data.target",
            )
    else:
        values = transform_target(_numbers(y, target, target=True), target_transform, target)
        state.target_mean = float(values.mean())
        std = float(values.std())
        state.target_std = std if std > 0 else 1.0
    return state


def _numbers(column: pd.Series, name: str, target: bool = False) -> np.ndarray:
    """The column as float64, gaps NaN; text in it is an error (a regression ``target``'s
    says the task may be classification)."""
    try:
        return pd.to_numeric(column, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError) as ex:
        bad = column[pd.to_numeric(column, errors="coerce").isna() & column.notna()]
        example = repr(bad.iloc[0]) if len(bad) else "?"
        if target:
            raise DataError(
                f"regression target '{name}' should hold numbers but has {example}",
                "set task=classification, or fix the value",
            ) from ex
        raise DataError(
            f"column '{name}' should hold numbers but has {example}",
            f"fix the value, or declare the column a category (data.categorical=[{name}])",
        ) from ex


def transform_target(values: np.ndarray, how: str | None, name: str) -> np.ndarray:
    if how is None:
        return values
    if how == "log":
        if (values <= 0).any():
            raise DataError(
                f"data.target_transform=log needs a positive target, but '{name}' has "
                f"{int((values <= 0).sum())} value(s) <= 0",
                "use data.target_transform=null",
            )
        return np.log(values)
    raise ConfigError(f"data.target_transform={how} is unknown", "use log or null")


def inverse_target(values: np.ndarray, how: str | None) -> np.ndarray:
    return np.exp(values) if how == "log" else values


# ---- applying --------------------------------------------------------------------------


def features(state: TabularState, frame: pd.DataFrame) -> np.ndarray:
    """The float32 input matrix of these rows (see the module docstring)."""
    missing_cols = [c for c in (*state.numeric, *state.categorical) if c not in frame.columns]
    if missing_cols:
        raise DataError(
            f"the rows lack feature column(s) {', '.join(missing_cols)}",
            "give every column the model was trained on (the target may be left out)",
        )
    n = len(frame)
    out = np.zeros((n, state.width), dtype=np.float32)
    gaps = {}
    for j, name in enumerate(state.numeric):
        values = _numbers(frame[name], name)
        gaps[name] = np.isnan(values)
        out[:, j] = _scale(state, j, np.where(gaps[name], state.medians[j], values))
    offset = len(state.numeric)
    for k, name in enumerate(state.indicators):
        out[:, offset + k] = gaps[name]
    offset = state.n_numeric
    for k, name in enumerate(state.categorical):
        out[:, offset + k] = codes(as_text(frame[name]), state.levels[name])
    return out


def _scale(state: TabularState, j: int, values: np.ndarray) -> np.ndarray:
    if state.scaling == "standard":
        return (values - state.centers[j]) / state.scales[j]
    if state.scaling == "quantile":
        return _quantile_normal(values, np.asarray(state.quantiles[j]))
    return values


def _quantile_normal(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Map through the training CDF to a standard normal (as scikit-learn's
    ``QuantileTransformer(output_distribution="normal")``: ties averaged both ways)."""
    from scipy.special import ndtri

    probs = np.linspace(0.0, 1.0, len(quantiles))
    up = np.interp(values, quantiles, probs)
    down = -np.interp(-values, -quantiles[::-1], -probs[::-1])
    cdf = np.clip(0.5 * (up + down), 1e-7, 1 - 1e-7)
    return ndtri(cdf)


def codes(text: pd.Series, levels: list[str]) -> np.ndarray:
    index = {level: i + 2 for i, level in enumerate(levels)}
    mapped = text.map(index)
    out = mapped.fillna(UNKNOWN).to_numpy(dtype=np.float32)
    out[text.isna().to_numpy()] = MISSING
    return out


def labels(state: TabularState, frame: pd.DataFrame) -> np.ndarray:
    """Encoded target: class indices (int64) or the standardised (transformed) value."""
    y = frame[state.target]
    if state.task == "classification":
        text = as_text(y)
        index = {c: i for i, c in enumerate(state.classes)}
        mapped = text.map(index)
        unseen = text[mapped.isna() & text.notna()]
        if len(unseen):
            raise DataError(
                f"target '{state.target}' has class '{unseen.iloc[0]}', not seen in training",
                f"the model knows: {', '.join(state.classes)}",
            )
        return mapped.to_numpy(dtype=np.int64)
    values = _numbers(y, state.target, target=True)
    values = transform_target(values, state.target_transform, state.target)
    return ((values - state.target_mean) / state.target_std).astype(np.float32)


def check_target(frame: pd.DataFrame, target: str) -> None:
    if target not in frame.columns:
        raise ConfigError(
            f"target column '{target}' is not in the table",
            f"set data.target to one of: {', '.join(map(str, frame.columns))}",
        )
    gaps = int(frame[target].isna().sum())
    if gaps:
        raise DataError(
            f"target column '{target}' has missing values in {gaps} of {len(frame)} rows",
            "drop or fill those rows before training",
        )
