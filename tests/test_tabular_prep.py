"""Tabular preprocessing, function by function, with exact values: the codes a net's
embeddings index, the boundaries of type and task inference, scaling, the target
encoding and every error's text. In process and fast: the mutation run of
``data/sources/tabular_prep.py`` runs these (with the property tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dltrain.data.sources import tabular_prep as prep
from dltrain.errors import ConfigError, DataError


def state_of(train: pd.DataFrame, task: str = "regression", **kwargs) -> prep.TabularState:
    numeric, categorical = prep.infer_columns(train, "y")
    return prep.fit(train, "y", task, numeric, categorical, **kwargs)


# ---- the layout a net reads --------------------------------------------------------------


def test_codes_unknown_0_missing_1_levels_from_2_in_sorted_order() -> None:
    train = pd.DataFrame({"c": ["b", "a", None, "b"], "y": [1.0, 2.0, 3.0, 4.0]})
    state = state_of(train)
    assert state.levels == {"c": ["a", "b"]} and state.numeric == []
    x = prep.features(state, pd.DataFrame({"c": ["a", "b", None, "z"]}))
    assert x[:, 0].tolist() == [2.0, 3.0, 1.0, 0.0]
    assert (prep.UNKNOWN, prep.MISSING) == (0, 1)
    assert state.cardinalities == [4] and state.feature_spec() == {"numeric": 0, "categories": [4]}


def test_layout_numbers_then_indicators_then_categories() -> None:
    train = pd.DataFrame(
        {"c": ["u", "v", "u", "v"], "a": [1.0, np.nan, 3.0, 5.0], "b": [2.0, 4.0, 6.0, 8.0],
         "d": [np.nan, 1.0, 1.0, 2.0], "y": [0.0, 1.0, 2.0, 3.0]}
    )  # fmt: skip
    state = state_of(train)
    assert (state.numeric, state.indicators, state.categorical) == (
        ["a", "b", "d"],
        ["a", "d"],
        ["c"],
    )
    assert (state.n_numeric, state.width) == (5, 6)
    assert state.feature_names() == ["a", "b", "d", "a_missing", "d_missing", "c"]
    assert state.feature_types() == ["q"] * 5 + ["c"]
    x = prep.features(state, pd.DataFrame({"a": [np.nan], "b": [2.0], "d": [1.0], "c": ["v"]}))
    median_a = (3.0 - state.centers[0]) / state.scales[0]  # median of 1, 3, 5
    assert x[0].tolist() == pytest.approx(
        [median_a, (2 - 5) / np.sqrt(5), -0.25 / np.sqrt(0.1875), 1.0, 0.0, 3.0]
    )
    assert state.medians == [3.0, 5.0, 1.0]
    assert state.centers == pytest.approx([3.0, 5.0, 1.25])  # of the gaps filled by medians
    assert state.scales == pytest.approx([np.sqrt(2), np.sqrt(5), np.sqrt(0.1875)])


def test_scalings_none_and_constant_columns() -> None:
    train = pd.DataFrame({"a": [1.0, 2.0, 4.0], "k": [7.0, 7.0, 7.0], "y": [1.0, 1.0, 1.0]})
    state = state_of(train, scaling="none")
    x = prep.features(state, pd.DataFrame({"a": [10.0], "k": [9.0]}))
    assert x.tolist() == [[10.0, 9.0]] and state.centers == [] and state.quantiles == []
    standard = state_of(train)
    assert standard.scales[1] == 1.0 and standard.target_std == 1.0  # constant: no 0 divisor
    assert prep.features(standard, pd.DataFrame({"a": [1.0], "k": [9.0]}))[0, 1] == 2.0


def test_quantile_scaling_maps_the_training_range_to_a_bounded_normal() -> None:
    train = pd.DataFrame({"a": np.arange(11.0), "y": np.arange(11.0)})
    state = state_of(train, scaling="quantile")
    assert len(state.quantiles[0]) == prep.N_QUANTILES == 1000
    assert state.quantiles[0][0] == 0.0 and state.quantiles[0][-1] == 10.0
    x = prep.features(state, pd.DataFrame({"a": [-5.0, 0.0, 5.0, 10.0, 99.0]}))[:, 0]
    bound = 5.199337582605575  # the normal quantile of 1 - 1e-7: values outside training
    assert x.tolist() == pytest.approx([-bound, -bound, 0.0, bound, bound], abs=1e-5)


# ---- inference ---------------------------------------------------------------------------------


def test_column_types_at_their_boundaries() -> None:
    frame = pd.DataFrame(
        {"ten": np.arange(20) % 10, "eleven": np.arange(20) % 11, "f": np.arange(20) / 3,
         "s": list("ab") * 10, "t": [True, False] * 10, "num_text": [str(i) for i in range(20)],
         "y": np.arange(20.0)}
    )  # fmt: skip
    assert prep.infer_columns(frame, "y") == (["eleven", "f", "num_text"], ["ten", "s", "t"])
    assert prep.infer_columns(frame, "y", numeric=["ten"], categorical=["f"], drop=["s"]) == (
        ["ten", "eleven", "num_text"], ["f", "t"]
    )  # fmt: skip
    # Integers as text (a text value outside training made the file's column text) count
    # as integers; a gap is no level: 10 levels and gaps are still a category.
    few = pd.DataFrame(
        {
            "t": ["1", "2", "3", "1"],
            "n": pd.array([1, 2, None, 3], dtype="Int64"),
            "y": [1, 2, 3, 4],
        }
    )
    assert prep.infer_columns(few, "y") == ([], ["t", "n"])
    ten = pd.DataFrame({"n": pd.array([*range(10), None], dtype="Int64"), "y": range(11)})
    assert prep.infer_columns(ten, "y") == ([], ["n"])
    bools = pd.Series([True, None, False], dtype=object)  # a boolean column with a gap
    assert prep.infer_columns(pd.DataFrame({"b": bools, "y": [1, 2, 3]}), "y") == ([], ["b"])
    mixed = pd.DataFrame({"m": ["1", "x", None], "e": [None, None, None], "y": [1, 2, 3]})
    assert prep.infer_columns(mixed.astype(object), "y") == ([], ["m", "e"])


def test_task_inference_at_its_boundaries() -> None:
    twenty, many = pd.Series(np.arange(40) % 20), pd.Series(np.arange(40) % 21)
    assert prep.infer_task(twenty) == ("classification", "20 distinct integers")
    assert prep.infer_task(many) == ("regression", "21 distinct integers")
    assert prep.infer_task(twenty.astype(float)) == ("classification", "20 distinct whole numbers")
    assert prep.infer_task(many.astype(float)) == ("regression", "21 distinct numbers")
    assert prep.infer_task(pd.Series([0.5, 1.0])) == ("regression", "2 distinct numbers")
    gaps = pd.Series([1.0, np.nan, 2.0])  # a gap is no class
    assert prep.infer_task(gaps) == ("classification", "2 distinct whole numbers")
    assert prep.infer_task(pd.Series([True, False])) == ("classification", "2 distinct values")
    assert prep.infer_task(pd.Series(["a", "b", "a"])) == ("classification", "2 distinct values")


def test_as_text_makes_whole_floats_integers_and_keeps_gaps() -> None:
    text = prep.as_text(pd.Series([1.0, 2.5, np.nan, None, "x", 3, True], dtype=object))
    assert text.iloc[[0, 1, 4, 5, 6]].tolist() == ["1", "2.5", "x", "3", "True"]
    assert text.iloc[[2, 3]].isna().all()
    assert prep.as_text(pd.Series([np.float32(4.0), pd.NA], dtype=object)).iloc[0] == "4"
    assert pd.isna(prep.as_text(pd.Series([pd.NA], dtype=object)).iloc[0])


# ---- the target --------------------------------------------------------------------------------


def test_regression_target_standardised_and_log_transform_undone() -> None:
    train = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "y": [1.0, 10.0, 100.0, 1000.0]})
    state = state_of(train, target_transform="log")
    logs = np.log([1.0, 10.0, 100.0, 1000.0])
    assert state.target_mean == pytest.approx(logs.mean())
    assert state.target_std == pytest.approx(logs.std())
    encoded = prep.labels(state, train)
    assert encoded.dtype == np.float32
    assert encoded.tolist() == pytest.approx(((logs - logs.mean()) / logs.std()).tolist(), abs=1e-6)
    back = prep.inverse_target(encoded * state.target_std + state.target_mean, "log")
    assert back.tolist() == pytest.approx([1.0, 10.0, 100.0, 1000.0], rel=1e-5)
    assert prep.inverse_target(np.array([2.0]), None).tolist() == [2.0]
    plain = state_of(train)
    assert plain.target_mean == 277.75 and plain.target_transform is None
    narrow = state_of(train.assign(y=[1.0, 2.0, 1.0, 2.0]))
    assert (narrow.target_mean, narrow.target_std) == (1.5, 0.5)


def test_booleans_declared_numeric_are_ones_and_zeros() -> None:
    flags = pd.array([True, None, False, True], dtype="boolean")  # as Parquet holds them
    train = pd.DataFrame({"b": flags, "y": [1.0, 2.0, 3.0, 4.0]})
    state = prep.fit(train, "y", "regression", ["b"], [], scaling="none")
    assert state.medians == [1.0] and state.indicators == ["b"]
    assert prep.features(state, train).tolist() == [[1, 0], [1, 1], [0, 0], [1, 0]]


def test_classes_sorted_as_text_and_encoded_by_index() -> None:
    train = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "y": [2, 10, 2, 1]})
    state = state_of(train, task="classification")
    assert state.classes == ["1", "10", "2"] and state.target_mean == 0.0
    assert prep.labels(state, train).tolist() == [2, 1, 2, 0]
    assert prep.labels(state, train).dtype == np.int64


# ---- errors, word for word ---------------------------------------------------------------------


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises((ConfigError, DataError)) as err:
        call(*args, **kwargs)
    return f"{type(err.value).__name__}: {err.value}"


def test_each_preprocessing_error_says_what_and_how_to_fix() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "s": ["u", "u"], "y": [1.0, -1.0]})
    assert error_of(prep.infer_columns, frame, "y", numeric=["b"]) == (
        "ConfigError: column 'b' named in the data config is not in the table — use one of: a, s, y"
    )
    assert error_of(prep.infer_columns, frame, "y", categorical=["b"]).startswith(
        "ConfigError: column 'b' named"
    )
    assert error_of(prep.infer_columns, frame, "y", drop=["b"]).startswith(
        "ConfigError: column 'b'"
    )
    assert error_of(prep.infer_columns, frame, "y", numeric=["a", "s"], categorical=["s", "a"]) == (
        "ConfigError: column(s) a, s declared both numeric and categorical — list each column "
        "in data.numeric or data.categorical, not both"
    )
    assert error_of(prep.infer_columns, frame, "y", drop=["a", "s"]) == (
        "ConfigError: the table has no feature columns besides the target 'y' — point data.path "
        "at a table with feature columns, or drop fewer (data.drop)"
    )
    assert error_of(prep.fit, frame, "y", "regression", ["a"], ["s"]) == (
        "DataError: category column 's' has a single level ('u') in the training split — drop "
        "it (data.drop=[s]) or declare it numeric (data.numeric=[s])"
    )
    gaps = frame.assign(s=[None, None])
    assert error_of(prep.fit, gaps, "y", "regression", ["a"], ["s"]).startswith(
        "DataError: category column 's' has a single level (all values missing) in the"
    )
    assert error_of(prep.fit, frame.assign(y=[1, 1]), "y", "classification", ["a"], []) == (
        "DataError: target 'y' has a single class in the training split — classification "
        "needs at least two classes; check data.target"
    )
    assert error_of(prep.fit, frame, "y", "regression", ["s"], []) == (
        "DataError: column 's' should hold numbers but has 'u' — fix the value, or declare the "
        "column a category (data.categorical=[s])"
    )
    assert error_of(prep.fit, frame, "y", "regression", ["a"], [], target_transform="log") == (
        "DataError: data.target_transform=log needs a positive target, but 'y' has 1 value(s) "
        "<= 0 — use data.target_transform=null"
    )
    assert error_of(prep.transform_target, np.array([0.0, 1.0]), "log", "y").endswith(
        "but 'y' has 1 value(s) <= 0 — use data.target_transform=null"
    )
    assert error_of(prep.fit, frame.assign(y=["u", "v"]), "y", "regression", ["a"], []) == (
        "DataError: regression target 'y' should hold numbers but has 'u' — set "
        "task=classification, or fix the value"
    )
    logged = prep.fit(frame.assign(y=[1.0, 2.0]), "y", "regression", ["a"], [], "standard", "log")
    assert error_of(prep.labels, logged, frame) == (
        "DataError: data.target_transform=log needs a positive target, but 'y' has 1 value(s) "
        "<= 0 — use data.target_transform=null"
    )
    assert error_of(prep.labels, logged, frame.assign(y=["1", "?"])).startswith(
        "DataError: regression target 'y' should hold numbers but has '?'"
    )
    assert error_of(prep.transform_target, np.array([1.0]), "sqrt", "y") == (
        "ConfigError: data.target_transform=sqrt is unknown — use log or null"
    )


def test_errors_applying_and_checking_rows() -> None:
    train = pd.DataFrame({"a": [1.0, 2.0], "s": ["u", "v"], "y": ["p", "q"]})
    state = prep.fit(train, "y", "classification", ["a"], ["s"])
    assert error_of(prep.features, state, train[["y"]]) == (
        "DataError: the rows lack feature column(s) a, s — give every column the model was "
        "trained on (the target may be left out)"
    )
    assert error_of(prep.labels, state, train.assign(y=["p", "r"])) == (
        "DataError: target 'y' has class 'r', not seen in training — the model knows: p, q"
    )
    assert error_of(prep.check_target, train, "z") == (
        "ConfigError: target column 'z' is not in the table — set data.target to one of: a, s, y"
    )
    assert error_of(prep.check_target, train.assign(y=[None, "q"]), "y") == (
        "DataError: target column 'y' has missing values in 1 of 2 rows — drop or fill those "
        "rows before training"
    )
    prep.check_target(train, "y")  # no gaps: no error
