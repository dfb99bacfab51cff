"""Which rows of a table are training, validation and test rows, and finding them again.

A row is known by its key: a hash of its cells (as text, so the ``1`` of an integer
column and the ``1.0`` it becomes once a gap elsewhere makes the column float are the
same) and of its occurrence among identical rows (the second copy of a row is another
row). Keys follow content, not position: a table that grew or was reordered still holds
the same keys for the same rows. The split record stores the file's fingerprint and
each split's keys as plain values (strings, ints, int64 tensors), so it travels inside
``weights_only`` checkpoints.

Classification splits are stratified by the target (scikit-learn's
``train_test_split``); rows of a class too rare for a stratified cut go to the training
side of it, with one line saying so.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dltrain.data.sources.tabular_prep import as_text
from dltrain.errors import DataError
from dltrain.runtime.process import is_rank_zero

SPLITS = ("train", "val", "test")
SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}


def note(text: str) -> None:
    """One line on stderr, from global rank 0 only: a decision the user should know of,
    not an error."""
    if is_rank_zero():
        print(f"note: {text}", file=sys.stderr, flush=True)


def fingerprint(path: str | Path) -> str:
    """sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def row_keys(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """One int64 key a row: its cells in ``columns`` (as text) and its occurrence number
    among identical rows, in table order."""
    text = pd.DataFrame({str(c): as_text(frame[c]) for c in columns}, index=frame.index)
    content = pd.util.hash_pandas_object(text, index=False).to_numpy()
    occurrence = pd.Series(content).groupby(content).cumcount().to_numpy()
    both = pd.DataFrame({"content": content, "occurrence": occurrence})
    return pd.util.hash_pandas_object(both, index=False).to_numpy().view(np.int64)


def record(path: str, frame: pd.DataFrame, parts: dict[str, np.ndarray]) -> dict[str, Any]:
    """The split record of ``parts`` (row positions of ``frame`` a split)."""
    columns = [str(c) for c in frame.columns]
    keys = row_keys(frame, columns)
    out: dict[str, Any] = {"file": str(path), "sha256": fingerprint(path), "columns": columns}
    for name in SPLITS:
        out[name] = torch.from_numpy(keys[np.sort(parts.get(name, np.array([], dtype=int)))])
    return out


def stored_rows(path: str, frame: pd.DataFrame, stored: dict[str, Any]) -> dict[str, np.ndarray]:
    """Row positions of ``frame`` a split, as the stored record says; on a changed file, one
    note line saying how many stored rows are left, or ``DataError`` when none is."""
    fix = "evaluate on the table the model was trained on"
    lacking = [c for c in stored["columns"] if c not in frame.columns]
    if lacking:
        raise DataError(
            f"{path} changed since training: it lacks column(s) {', '.join(lacking)}", fix
        )
    keys = row_keys(frame, stored["columns"])
    out = {name: np.flatnonzero(np.isin(keys, stored[name].numpy())) for name in SPLITS}
    if fingerprint(path) == stored["sha256"]:
        return out
    scored = [n for n in ("test", "val") if len(stored[n])]
    for name in scored:
        if not len(out[name]):
            raise DataError(
                f"{path} changed since training: none of its {len(stored[name])} "
                f"{SPLIT_WORDS[name]} rows is left",
                fix,
            )
    counts = " and ".join(
        f"the {len(out[n])} of {len(stored[n])} {SPLIT_WORDS[n]} rows" for n in scored
    )
    note(f"{path} changed since training: scoring {counts} still in it")
    return out


# ---- drawing a split ------------------------------------------------------------------------


def rare_classes(labels: np.ndarray, splits: int, target: str) -> None:
    """One note naming the classes with fewer rows than there are splits."""
    values, counts = np.unique(labels, return_counts=True)
    rare = [(v, c) for v, c in zip(values, counts, strict=True) if c < splits]
    if rare:
        names = ", ".join(f"'{v}' ({c} row{'s' if c > 1 else ''})" for v, c in rare)
        words = "training, validation and test" if splits == 3 else "training and test"
        note(
            f"class(es) {names} of '{target}' are too rare to appear in the {words} splits "
            "alike: training gets their rows first"
        )


def cut(
    index: np.ndarray,
    size: int,
    seed: int,
    labels: np.ndarray | None = None,
    what: str = "test",
    target: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """(``size`` rows of ``index``, the rest), seeded; stratified by ``labels`` when given.

    Rows of a class with a single row in ``index`` stay in the rest (a stratified cut
    needs two). A cut too small to hold one row of each class is drawn unstratified,
    with one note."""
    from sklearn.model_selection import train_test_split

    if labels is None:
        rest, taken = train_test_split(index, test_size=size, random_state=seed)
        return np.sort(taken), np.sort(rest)
    values, counts = np.unique(labels, return_counts=True)
    single = np.isin(labels, values[counts < 2])
    pool, pool_labels = index[~single], labels[~single]
    n_classes = int((counts >= 2).sum())
    if min(size, len(pool) - size) < n_classes:
        note(
            f"the {what} split ({size} rows) is too small to hold each of the "
            f"{len(values)} classes of '{target}': it is drawn unstratified"
        )
        return cut(index, size, seed)
    rest, taken = train_test_split(pool, test_size=size, stratify=pool_labels, random_state=seed)
    return np.sort(taken), np.sort(np.concatenate([rest, index[single]]))
