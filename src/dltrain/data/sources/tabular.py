"""``data=tabular``: one CSV or Parquet table, a target column, the rest features.

Rows are split (seeded and, for classes, stratified; or by a split column), column
types, the task and the preprocessing of ``tabular_prep.py`` are inferred and fitted on
the training rows only, and every split becomes one float32 matrix in memory, served by
the same batch loader as the other datasets. The fitted preprocessing, with the table's
fingerprint and each split's row keys (``tabular_split.py``), is this data module's
``state_dict``: Lightning stores it in every checkpoint. ``dl-eval`` applies it instead
of refitting and scores the stored rows, not a split drawn again from today's file;
``dl-predict`` applies the preprocessing to new rows.

The net, the module and the config learn what the table turned out to be (task,
input width, classes, embedding sizes) from ``prepare_table()``, which runs before they
are built.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dltrain.data.loading.memory import InMemoryDataModule
from dltrain.data.loading.split import Split
from dltrain.data.sources import tabular_prep as prep
from dltrain.data.sources import tabular_split as split
from dltrain.errors import ConfigError, DataError

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def read_table(path: str | Path) -> Any:
    """A CSV or Parquet file as a pandas DataFrame (clear errors for the usual mistakes)."""
    import pandas as pd

    file = Path(str(path))
    if not file.is_file():
        raise DataError(
            f"table {file} does not exist",
            "set data.path to a .csv or .parquet file (relative paths start where dl-train runs)",
        )
    suffix = file.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            try:
                return pd.read_parquet(file)
            except ImportError as ex:
                raise ConfigError(
                    f"reading {file} (Parquet) needs pyarrow, which is not installed",
                    "pip install 'dl-train[tabular]' (or convert the table to CSV)",
                ) from ex
        if suffix in (".csv", ".txt", ".tsv"):
            return pd.read_csv(file, sep="\t" if suffix == ".tsv" else ",")
    except (ValueError, OSError) as ex:
        raise DataError(f"cannot read {file}: {ex}", "check that it is a valid table") from ex
    raise DataError(f"{file} is not a .csv or .parquet file", "convert it to CSV or Parquet")


class TabularDataModule(InMemoryDataModule):
    """A table from ``path``; ``target`` is predicted from the other columns.

    Args:
        path: a ``.csv`` or ``.parquet`` file.
        target: the column to predict.
        task: ``classification``, ``regression``, or ``None`` (inferred from the target,
            with one line saying so).
        numeric, categorical: columns declared of that type; the others are inferred.
        drop: columns that are not features (ids, leaks).
        scaling: ``standard`` | ``quantile`` | ``none`` for numeric columns.
        target_transform: ``log`` fits regression on the log of the target.
        test_fraction, val_fraction: seeded split (validation is cut from the rows left
            after the test split; stratified by class for classification), unless
            ``split_column`` names a column of ``train``/``val``/``test`` values.
        shape, num_classes: filled in by ``prepare_table()`` (``None`` in the config).
    """

    gives = "tables"
    scale = 1.0

    def __init__(
        self,
        path: str,
        target: str,
        task: str | None = None,
        numeric: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        drop: Sequence[str] | None = None,
        scaling: str = "standard",
        target_transform: str | None = None,
        test_fraction: float = 0.2,
        val_fraction: float = 0.1,
        split_column: str | None = None,
        shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        batch_size: int = 256,
        eval_batch_size: int = 4096,
        seed: int = 0,
    ) -> None:
        super().__init__(
            shape=list(shape or [1]),
            num_classes=int(num_classes or 1),
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            val_fraction=val_fraction,
            seed=seed,
        )
        self.path = str(path)
        self.target = str(target)
        self.task = task
        self.declared = (list(numeric or []), list(categorical or []), list(drop or []))
        self.scaling = scaling
        self.target_transform = target_transform
        self.test_fraction = float(test_fraction)
        self.split_column = split_column
        self.state: prep.TabularState | None = None
        self.frames: dict[str, Any] = {}  # raw rows per split (the tree path reads them)
        self.classes: list[str] = []

    # ---- fitting ---------------------------------------------------------------------
    def prepare_table(self, state: dict[str, Any] | None = None) -> prep.TabularState:
        """Read and split the table; fit the preprocessing on the training rows, or apply
        a fitted ``state`` (from a checkpoint) to the rows of the split it stores.
        Idempotent."""
        if self.state is not None:
            return self.state
        frame = read_table(self.path)
        prep.check_target(frame, self.target)
        if state is not None:
            self.state = prep.TabularState.from_dict(state)
            self.frames = self._frames(frame, self._stored_rows(frame))
        else:
            parts = self._split_rows(frame)
            self.frames = self._frames(frame, parts)
            self.state = self._fit(self.frames["train"])
            self.state.split = split.record(self.path, frame, parts)
        self._tensors()
        return self.state

    def _stored_rows(self, frame: Any) -> dict[str, np.ndarray]:
        stored = self.state.split if self.state is not None else None
        if not stored:
            raise DataError(
                "the checkpoint does not record which rows of its table were test rows (it "
                "was written before dl-train stored them)",
                "train it again to evaluate it",
            )
        return split.stored_rows(self.path, frame, stored)

    def _frames(self, frame: Any, parts: dict[str, np.ndarray]) -> dict[str, Any]:
        """Rows of each split, in table order (training kept even when empty)."""
        if self.split_column:
            frame = frame.drop(columns=[str(self.split_column)])
        return {
            k: frame.iloc[np.sort(v)].reset_index(drop=True)
            for k, v in parts.items()
            if len(v) or k == "train"
        }

    def _fit(self, train: Any) -> prep.TabularState:
        if self.scaling not in prep.SCALINGS:
            raise ConfigError(
                f"data.scaling={self.scaling} is unknown", f"use one of: {', '.join(prep.SCALINGS)}"
            )
        task = self.task
        if task is None:
            task, why = prep.infer_task(train[self.target])
            other = "regression" if task == "classification" else "classification"
            print(
                f"task: {task} (inferred: target '{self.target}' has {why} in the training "
                f"rows; set task={other} to change)",
                file=sys.stderr if _quiet() else sys.stdout,
                flush=True,
            )
        elif task not in prep.TASKS:
            raise ConfigError(f"task={task} is unknown", "use classification or regression")
        if task == "classification" and self.target_transform:
            raise ConfigError(
                f"data.target_transform={self.target_transform} applies to regression only",
                "use data.target_transform=null for classification",
            )
        numeric, categorical = prep.infer_columns(train, self.target, *self.declared)
        return prep.fit(
            train, self.target, task, numeric, categorical, self.scaling, self.target_transform
        )

    def _split_rows(self, frame: Any) -> dict[str, np.ndarray]:
        """Row positions of each split: by ``split_column``, else seeded (stratified by
        class when the target is one of classes)."""
        if self.split_column:
            return self._by_column(frame)
        n = len(frame)
        if not (0.0 < self.test_fraction < 1.0):
            raise ConfigError(
                f"data.test_fraction={self.test_fraction} is outside (0, 1)",
                "use e.g. data.test_fraction=0.2, or a split column (data.split_column)",
            )
        n_test = int(round(n * self.test_fraction))
        n_val = int(round((n - n_test) * self.val_fraction))
        n_train = n - n_test - n_val
        if n_test < 1 or n_train < 2 or (self.val_fraction > 0 and n_val < 1):
            raise DataError(
                f"the table has {n} rows: too few for data.test_fraction={self.test_fraction} "
                f"and data.val_fraction={self.val_fraction} (each split needs a row, "
                "training two)",
                "use a larger table, or larger fractions",
            )
        labels = self._strata(frame)
        if labels is None:
            perm = np.random.default_rng(self.seed).permutation(n)
            parts = {"test": perm[:n_test], "val": perm[n_test : n_test + n_val]}
            parts["train"] = perm[n_test + n_val :]
            return parts
        split.rare_classes(labels, 3 if n_val else 2, self.target)
        test, rest = split.cut(np.arange(n), n_test, self.seed, labels, "test", self.target)
        if not n_val:
            return {"test": test, "val": rest[:0], "train": rest}
        val, train = split.cut(rest, n_val, self.seed, labels[rest], "validation", self.target)
        return {"test": test, "val": val, "train": train}

    def _strata(self, frame: Any) -> np.ndarray | None:
        """The classes to stratify by: the target's, for a classification task (given,
        or inferred from the whole column: for the split only, the task itself is
        inferred from the training rows)."""
        task = self.task or prep.infer_task(frame[self.target])[0]
        if task != "classification":
            return None
        return prep.as_text(frame[self.target]).to_numpy(dtype=str)

    def _by_column(self, frame: Any) -> dict[str, np.ndarray]:
        col = str(self.split_column)
        if col not in frame.columns:
            raise ConfigError(
                f"split column '{col}' is not in the table",
                f"set data.split_column to one of: {', '.join(map(str, frame.columns))}",
            )
        names = prep.as_text(frame[col]).str.lower().map(SPLIT_NAMES)
        bad = frame[col][names.isna()]
        if len(bad):
            raise DataError(
                f"split column '{col}' has value {bad.iloc[0]!r} in {len(bad)} row(s)",
                "use train, val or test in every row",
            )
        out = {s: np.flatnonzero((names == s).to_numpy()) for s in ("train", "val", "test")}
        if len(out["train"]) < 2 or len(out["test"]) < 1:
            raise DataError(
                f"split column '{col}' gives {len(out['train'])} training and "
                f"{len(out['test'])} test rows",
                "mark at least two rows train and one test",
            )
        self.val_fraction = 1.0 if len(out["val"]) else 0.0  # has_val follows the column
        return out

    def _tensors(self) -> None:
        state = self.state
        assert state is not None
        splits = {}
        for name, rows in self.frames.items():
            x = torch.from_numpy(prep.features(state, rows))
            y = torch.from_numpy(np.array(prep.labels(state, rows)))  # writable copy
            splits[name] = Split(x, y)
        self.train_set, self.test_set = splits["train"], splits["test"]
        self.val_set = splits.get("val")
        self.shape = (state.width,)
        self.num_classes = len(state.classes) if state.task == "classification" else 1
        self.classes = list(state.classes)

    @property
    def target_label(self) -> str:
        """The target as plots name it (on the scale the model is fitted on)."""
        return f"log {self.target}" if self.target_transform == "log" else self.target

    # ---- Lightning hooks -------------------------------------------------------------
    @property
    def has_val(self) -> bool:
        return self.val_set is not None if self.state is not None else self.val_fraction > 0

    def setup(self, stage: str | None = None) -> None:
        self.prepare_table()
        device = self._device()
        if device.type != "cpu":  # resident on the accelerator: no per-step copies
            for s in (self.train_set, self.val_set, self.test_set):
                if s is not None and s.x.device != device:
                    s.x, s.y = s.x.to(device), s.y.to(device)

    def on_after_batch_transfer(self, batch: tuple[Tensor, Tensor], dataloader_idx: int):
        return batch  # scaled once at load time

    def state_dict(self) -> dict[str, Any]:
        """The fitted preprocessing: Lightning saves it in every checkpoint."""
        return {"tabular": self.state.to_dict()} if self.state is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass  # applied before the model is built (``prepare_table(state)``), not on restore


def _quiet() -> bool:
    """Inside a sweep the line would repeat for every trial: it goes to stderr there."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except ImportError:  # pragma: no cover - hydra is a dependency
        return False


#: Key of the fitted preprocessing inside a checkpoint (Lightning stores a data
#: module's ``state_dict`` under its class name).
CHECKPOINT_KEY = TabularDataModule.__qualname__


def checkpoint_state(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The fitted preprocessing stored in a checkpoint, if it holds tabular data."""
    entry = checkpoint.get(CHECKPOINT_KEY)
    return entry.get("tabular") if isinstance(entry, dict) else None
