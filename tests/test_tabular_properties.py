"""Property tests of tabular preprocessing (hypothesis): any table of numeric, integer,
text and boolean columns with gaps, read from a CSV as a user's file is; fitted on its
training rows, applied to rows it never saw. Outputs are finite, levels it never saw are
"unknown", the columns come in one order, and the fitted state survives a
``weights_only`` checkpoint."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dltrain.data.sources import tabular_prep as prep
from dltrain.errors import DataError

LEVELS = ["red", "green", "blue"]
KINDS = {
    "num": st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
    "int": st.integers(-3, 3),
    "text": st.sampled_from(LEVELS),
    "flag": st.booleans(),
}
#: Values only the unseen rows may hold: new levels, numbers outside the training range.
UNSEEN = {
    "num": st.floats(-1e7, 1e7, allow_nan=False, allow_subnormal=False),
    "int": st.integers(-50, 50),
    "text": st.sampled_from([*LEVELS, "purple", "1.5"]),
    "flag": st.booleans(),
}


def cell(kind: str, unseen: bool) -> st.SearchStrategy:
    return st.none() | (UNSEEN if unseen else KINDS)[kind]


@st.composite
def tables(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(training rows, unseen rows, task), both read back from one CSV file."""
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=5))
    n_train, n_new = draw(st.integers(4, 25)), draw(st.integers(1, 8))
    columns = {}
    for i, kind in enumerate(kinds):
        train = draw(st.lists(cell(kind, False), min_size=n_train, max_size=n_train))
        new = draw(st.lists(cell(kind, True), min_size=n_new, max_size=n_new))
        columns[f"{kind}{i}"] = train + new
    task, n = draw(st.sampled_from(prep.TASKS)), n_train + n_new
    if task == "regression":
        y = draw(st.lists(st.floats(-100, 100), min_size=n, max_size=n))
    else:  # both classes in training
        y = [
            "yes",
            "no",
            *draw(st.lists(st.sampled_from(["yes", "no"]), min_size=n - 2, max_size=n - 2)),
        ]
    frame = pd.DataFrame({**columns, "y": y})
    text = io.StringIO()
    frame.to_csv(text, index=False)
    read = pd.read_csv(io.StringIO(text.getvalue()))
    return read.iloc[:n_train].reset_index(drop=True), read.iloc[n_train:], task


def fitted_or_refused(train: pd.DataFrame, task: str, scaling: str) -> prep.TabularState | None:
    """The fitted state, or ``None`` where fitting refuses a column with one level (and
    the refusal names a column that has one level in training)."""
    numeric, categorical = prep.infer_columns(train, "y")
    try:
        return prep.fit(train, "y", task, numeric, categorical, scaling)
    except DataError as err:
        single = [c for c in categorical if prep.as_text(train[c]).nunique() < 2]
        assert single and str(err).startswith(f"category column '{single[0]}' has a single level")
        return None


def through_checkpoint(state: prep.TabularState, tmp: io.BytesIO) -> prep.TabularState:
    torch.save({"tabular": state.to_dict()}, tmp)
    tmp.seek(0)
    return prep.TabularState.from_dict(torch.load(tmp, weights_only=True)["tabular"])


@settings(max_examples=50, deadline=None)
@given(table=tables(), scaling=st.sampled_from(prep.SCALINGS))
def test_fitted_on_training_rows_applies_to_any_unseen_rows(
    table: tuple[pd.DataFrame, pd.DataFrame, str], scaling: str
) -> None:
    train, new, task = table
    state = fitted_or_refused(train, task, scaling)
    if state is None:
        return
    x = prep.features(state, new)
    assert x.dtype == np.float32 and x.shape == (len(new), state.width)
    assert np.isfinite(x).all()
    assert np.isfinite(prep.features(state, train)).all()
    # One order of columns: the table's, numbers first, whatever order the rows come in.
    order = [c for c in train.columns if c in (*state.numeric, *state.categorical)]
    assert [*state.numeric, *state.categorical] == sorted(order, key=state.categorical.__contains__)
    shuffled = new[list(reversed(new.columns))]
    assert np.array_equal(prep.features(state, shuffled), x)
    # Categories: training levels 2.., a gap 1, anything else 0 ("unknown").
    for k, name in enumerate(state.categorical):
        text = prep.as_text(new[name])
        expected = [
            prep.MISSING if pd.isna(v) else 2 + state.levels[name].index(v)
            if v in state.levels[name] else prep.UNKNOWN
            for v in text
        ]  # fmt: skip
        assert x[:, state.n_numeric + k].tolist() == expected
        assert x[:, state.n_numeric + k].max(initial=0) < state.cardinalities[k]
    # Numbers: a gap is the training median, flagged where training had gaps.
    for j, name in enumerate(state.numeric):
        gaps = new[name].isna().to_numpy()
        filled = prep.features(state, new.assign(**{name: state.medians[j]}))[:, j]
        assert np.array_equal(x[gaps, j], filled[gaps])
        if name in state.indicators:
            assert x[:, len(state.numeric) + state.indicators.index(name)].tolist() == list(gaps)
    # The fitted state is plain values: a weights_only checkpoint applies it unchanged.
    again = through_checkpoint(state, io.BytesIO())
    assert again == state
    assert np.array_equal(prep.features(again, new), x, equal_nan=True)
    labels = prep.labels(again, train)
    if task == "classification":
        assert sorted(set(labels.tolist())) == [0, 1] and state.classes == ["no", "yes"]
    else:
        assert np.isfinite(labels).all() and labels.dtype == np.float32


@pytest.mark.parametrize("scaling", prep.SCALINGS)
def test_a_column_with_no_number_in_training_is_filled_with_zero(scaling: str) -> None:
    train = pd.DataFrame({"v": [np.nan] * 4, "w": [1.0, 2.0, 3.0, 4.0], "y": [1.0, 2, 3, 4]})
    state = prep.fit(train, "y", "regression", ["v", "w"], [], scaling)
    x = prep.features(state, pd.DataFrame({"v": [5.0, np.nan], "w": [1.0, 9.0]}))
    assert state.medians[0] == 0.0 and state.indicators == ["v"]
    assert np.isfinite(x).all() and x[:, 2].tolist() == [0.0, 1.0]
