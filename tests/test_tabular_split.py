"""A table keeps the split it was trained on: the checkpoint stores the file's fingerprint
and each split's row keys, and ``dl-eval`` scores exactly those rows, on a table that
grew or was reordered, whatever ``seed=`` it is given, or refuses with one line.
Classification splits are stratified; column types and the task come from the training
rows only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_cli, run_dir_of
from dltrain.commands.train import run
from dltrain.data.sources.tabular import TabularDataModule
from dltrain.errors import DataError
from test_tabular import compose_run, write_table


def results_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def through_checkpoint(dm: TabularDataModule) -> dict:
    """The data module's checkpoint entry as ``dl-eval`` reads it (``weights_only``)."""
    path = Path(dm.path).with_suffix(".ckpt")
    torch.save({"dm": dm.state_dict()}, path)
    return torch.load(path, weights_only=True)["dm"]["tabular"]


def rows_of(dm: TabularDataModule, split: str) -> set[tuple]:
    return set(dm.frames[split].astype(str).itertuples(index=False, name=None))


# ---- the done-when scenario: a real training run, rows appended, dl-eval ----------------------


def test_eval_of_a_grown_table_scores_the_training_runs_test_rows_exactly(tmp_path: Path) -> None:
    """Trained here (in process), evaluated by ``dl-eval`` as a user runs it, after rows
    were appended to the CSV and with another seed: the training run's test metrics."""
    table = tmp_path / "t.csv"
    write_table(table, n=200)
    data = ["data=tabular", f"data.path={table}", "data.target=y", "model=mlp"]
    run(compose_run(tmp_path, [*data, "trainer.max_epochs=1", "callbacks.plots=null"]))
    trained = results_of(tmp_path / "run")
    # 25 new rows, then copies of 5 rows already there (duplicates are new rows too).
    grown = pd.concat([write_table(tmp_path / "new.csv", n=25, seed=9),
                       pd.read_csv(table).iloc[:5]])  # fmt: skip
    grown.to_csv(table, mode="a", header=False, index=False)

    out = run_cli([f"ckpt_path={trained['best_checkpoint']}", "seed=7"], tmp_path, cmd="dl-eval")
    assert out.returncode == 0, out.stderr[-2000:]
    again = results_of(run_dir_of(tmp_path, "eval"))["metrics"]
    tested = {k: v for k, v in trained["metrics"].items() if k.startswith("test/")}
    assert len(tested) >= 4 and {k: again[k] for k in tested} == tested
    notes = [line for line in out.stderr.splitlines() if line.startswith("note:")]
    assert notes == [
        f"note: {table} changed since training: scoring the 40 of 40 test rows and the 16 of "
        "16 validation rows still in it"
    ]


# ---- the stored split, in process -------------------------------------------------------------


def fitted(path: Path, **kwargs) -> TabularDataModule:
    dm = TabularDataModule(path=str(path), target="y", **kwargs)
    dm.prepare_table()
    return dm


def reloaded(path: Path, state: dict, **kwargs) -> TabularDataModule:
    dm = TabularDataModule(path=str(path), target="y", **kwargs)
    dm.prepare_table(state)
    return dm


def test_reordered_and_shrunk_table_scores_the_stored_rows_still_there(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    table = tmp_path / "t.csv"
    frame = write_table(table, n=100)
    dm = fitted(table, seed=3)
    state = through_checkpoint(dm)
    assert isinstance(state["split"]["test"], torch.Tensor)  # plain values: weights_only
    test_rows = rows_of(dm, "test")

    # The same file: the same rows, whatever the seed (no note).
    capsys.readouterr()
    same = reloaded(table, state, seed=11)
    assert rows_of(same, "test") == test_rows and rows_of(same, "val") == rows_of(dm, "val")
    assert "note:" not in capsys.readouterr().err

    # Reordered, two of the test rows deleted: exactly the 18 stored test rows left.
    gone = pd.read_csv(table).merge(dm.frames["test"].iloc[:2], how="left", indicator=True)
    kept = pd.read_csv(table)[(gone["_merge"] == "left_only").to_numpy()]
    kept.sample(frac=1.0, random_state=0).to_csv(table, index=False)
    changed = reloaded(table, state, seed=11)
    assert len(frame) - len(kept) == 2
    deleted = set(dm.frames["test"].iloc[:2].astype(str).itertuples(index=False, name=None))
    assert len(deleted) == 2 and rows_of(changed, "test") == test_rows - deleted
    assert rows_of(changed, "train") == rows_of(dm, "train")
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"note: {table} changed since training: scoring the 18 of 20 test rows and the 8 of 8 "
        "validation rows still in it"
    )


def test_a_table_without_its_test_rows_is_refused_naming_the_file(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    write_table(table, n=100)
    dm = fitted(table)
    state = through_checkpoint(dm)
    pd.read_csv(table).assign(b=lambda f: f["b"] + 1).to_csv(table, index=False)
    with pytest.raises(DataError) as err:
        reloaded(table, state)
    assert str(err.value) == (
        f"{table} changed since training: none of its 20 test rows is left — evaluate "
        "on the table the model was trained on"
    )
    pd.read_csv(table).drop(columns=["level"]).to_csv(table, index=False)
    with pytest.raises(DataError) as err:
        reloaded(table, state)
    assert str(err.value) == (
        f"{table} changed since training: it lacks column(s) level — evaluate on the table "
        "the model was trained on"
    )


def test_a_checkpoint_without_a_stored_split_is_refused(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    write_table(table, n=60)
    state = through_checkpoint(fitted(table))
    del state["split"]  # as written before the split was stored
    with pytest.raises(DataError) as err:
        reloaded(table, state)
    assert str(err.value) == (
        "the checkpoint does not record which rows of its table were test rows (it was "
        "written before dl-train stored them) — train it again to evaluate it"
    )


def test_row_keys_follow_content_not_position_and_number_duplicates() -> None:
    from dltrain.data.sources import tabular_split

    frame = pd.DataFrame({"a": [1.0, 2.0, 1.0, np.nan], "b": ["x", "y", "x", None]})
    keys = tabular_split.row_keys(frame, ["a", "b"])
    assert len(set(keys.tolist())) == 4  # the duplicate rows 0 and 2: distinct keys
    # Integers read as floats (a gap elsewhere) and reordered columns: the same keys.
    ints = pd.DataFrame({"b": ["x", "y", "x"], "a": [1, 2, 1]})
    assert tabular_split.row_keys(ints, ["a", "b"]).tolist() == keys[:3].tolist()
    swapped = frame.iloc[[2, 1, 0, 3]]
    assert sorted(tabular_split.row_keys(swapped, ["a", "b"]).tolist()) == sorted(keys.tolist())


# ---- stratified splits, rare classes ----------------------------------------------------------


def class_table(path: Path, counts: dict[str, int], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = np.concatenate([[name] * n for name, n in counts.items()])
    frame = pd.DataFrame({"x": rng.normal(size=len(y)), "y": rng.permutation(y)})
    frame.to_csv(path, index=False)
    return frame


def test_classification_splits_keep_the_class_proportions(tmp_path: Path) -> None:
    class_table(tmp_path / "c.csv", {"a": 160, "b": 30, "c": 10})
    for seed in range(3):
        dm = fitted(tmp_path / "c.csv", seed=seed)
        counts = {s: dm.frames[s]["y"].value_counts().to_dict() for s in ("train", "val", "test")}
        assert counts["test"] == {"a": 32, "b": 6, "c": 2}, counts
        assert counts["val"] == {"a": 13, "b": 2, "c": 1}, counts
        assert counts["train"] == {"a": 115, "b": 22, "c": 7}, counts


def test_a_class_too_rare_for_every_split_trains_with_one_note(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    class_table(tmp_path / "c.csv", {"a": 60, "b": 37, "z": 1, "w": 2})
    for seed in range(8):  # unstratified, "z" was a test or validation row for some seeds
        dm = fitted(tmp_path / "c.csv", seed=seed)
        assert dm.classes == ["a", "b", "w", "z"]
        assert (dm.frames["train"]["y"] == "z").sum() == 1
        assert (dm.frames["train"]["y"] == "w").sum() >= 1
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert notes[0] == (
        "note: class(es) 'w' (2 rows), 'z' (1 row) of 'y' are too rare to appear in the "
        "training, validation and test splits alike: training gets their rows first"
    )
    assert len(notes) == 8


def test_too_small_a_test_split_for_the_classes_is_drawn_unstratified(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    counts = {f"k{i}": 4 for i in range(12)}
    class_table(tmp_path / "c.csv", counts)
    dm = fitted(tmp_path / "c.csv", test_fraction=0.1, val_fraction=0.0)
    assert len(dm.frames["test"]) == 5 and len(dm.frames["train"]) == 43
    assert capsys.readouterr().err.strip() == (
        "note: the test split (5 rows) is too small to hold each of the 12 classes of 'y': "
        "it is drawn unstratified"
    )


# ---- inference from the training rows only ----------------------------------------------------


def test_column_types_and_task_come_from_the_training_rows(tmp_path: Path) -> None:
    """Through the data module (not the preprocessing alone): rows outside training that
    would change the inferred types must not."""
    rng = np.random.default_rng(0)
    n = 90
    split = np.array(["train"] * 60 + ["val"] * 10 + ["test"] * 20)
    level = rng.integers(1, 4, size=n)
    level[60:] = rng.integers(100, 200, size=30)  # 3 levels in training, many outside it
    score = rng.normal(size=n).round(3).astype(object)
    score[75] = "unknown"  # text in one test row only
    y = rng.integers(0, 3, size=n).astype(float)  # whole numbers: classes
    frame = pd.DataFrame({"level": level, "score": score, "y": y, "part": split})
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError) as err:
        fitted(tmp_path / "t.csv", split_column="part")
    # The training rows hold numbers only: a number column, whose text row is refused.
    assert str(err.value) == (
        "column 'score' should hold numbers but has 'unknown' — fix the value, or declare the "
        "column a category (data.categorical=[score])"
    )
    frame.loc[75, "score"] = "0.5"
    frame.to_csv(tmp_path / "t.csv", index=False)
    dm = fitted(tmp_path / "t.csv", split_column="part")
    assert dm.state.task == "classification" and dm.classes == ["0", "1", "2"]
    assert dm.state.numeric == ["score"] and dm.state.categorical == ["level"]
    assert dm.state.levels["level"] == ["1", "2", "3"]
    assert (dm.test_set.x[:, -1] == 0).all()  # levels unseen in training: "unknown"
