"""Text classification data in plain files: one file per class with one example per line
(the rt-polarity / MR layout), or one CSV / JSON-lines file with a text and a label column."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dltrain.data.sources.text import TextDataModule, TextSplit
from dltrain.errors import ConfigError, DataError


class TextFilesDataModule(TextDataModule):
    """Texts from files; the test (and validation) split is cut from them, seeded.

    Args:
        files: one file per class, one example per line; the class index is the file's
            position in the list. Empty lines are skipped.
        path: instead of ``files``, a ``.csv`` or ``.jsonl`` file with one example per row.
        text_column, label_column: the columns of ``path``. Labels may be integers
            ``0..num_classes-1`` or names (mapped to indices in sorted order).

    Class names (kept in checkpoints for ``dl-predict``): the files' names
    (``rt-polarity.neg``, ``rt-polarity.pos``: ``neg``, ``pos``), or the label names.
        Other arguments as ``TextDataModule``.
    """

    def __init__(
        self,
        files: Sequence[str] | None = None,
        path: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if bool(files) == bool(path):
            raise ConfigError(
                "text_files needs either data.files (one file per class) or data.path "
                "(a CSV/JSONL file), not both or neither",
                "set one of them and null the other",
            )
        self.files = [Path(f) for f in files] if files else []
        self.path = Path(path) if path else None
        self.text_column, self.label_column = text_column, label_column

    def describe(self) -> str:
        return str(self.path) if self.path else ", ".join(str(f) for f in self.files)

    def load(self) -> dict[str, TextSplit]:
        if self.path is not None:
            return {"train": self._read_table(self.path)}
        texts: list[str] = []
        labels: list[int] = []
        for label, file in enumerate(self.files):
            lines = read_lines(file)
            texts += lines
            labels += [label] * len(lines)
        self.classes = file_class_names(self.files)
        return {"train": TextSplit(texts, labels)}

    def _read_table(self, path: Path) -> TextSplit:
        rows = read_rows(path, "data.path", "use data.files with one text file per class")
        for col in (self.text_column, self.label_column):
            if rows and col not in rows[0]:
                raise DataError(
                    f"{path} has no column '{col}' (columns: {', '.join(rows[0])})",
                    "set data.text_column / data.label_column to the file's column names",
                )
        values = [r[self.label_column] for r in rows]
        self.classes = label_names(values)
        return TextSplit([str(r[self.text_column]) for r in rows], label_indices(values))


def label_indices(values: Sequence[Any]) -> list[int]:
    """Integer labels as they are; names (``pos``/``neg``) numbered in sorted order."""
    names = label_names(values)
    if not names:
        return [int(v) for v in values]
    index = {name: i for i, name in enumerate(names)}
    return [index[str(v)] for v in values]


def label_names(values: Sequence[Any]) -> list[str]:
    """The sorted label names when labels are names; empty when they are integers."""
    try:
        [int(v) for v in values]
    except (TypeError, ValueError):
        return sorted({str(v) for v in values})
    return []


def file_class_names(files: Sequence[Path]) -> list[str]:
    """A name per class file: the part that differs. ``rt-polarity.neg`` and
    ``rt-polarity.pos`` share a stem, so their suffixes (``neg``, ``pos``); ``neg.txt`` and
    ``pos.txt`` their suffix, so their stems."""
    stems = [f.stem for f in files]
    if len(set(stems)) == len(stems):
        return stems
    return [f.suffix.lstrip(".") or f.name for f in files]


def read_lines(path: Path) -> list[str]:
    """The non-empty lines of a text file, stripped: one example each."""
    return [ln for ln in (raw.strip() for raw in _read_text(path).splitlines()) if ln]


def read_rows(path: Path, what: str, otherwise: str) -> list[dict[str, Any]]:
    """The rows of a ``.csv``, ``.tsv`` or ``.jsonl`` file as dicts; ``what`` names the
    setting that gave the path and ``otherwise`` the alternative, for the error."""
    text = _read_text(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return [json.loads(ln) for ln in text.splitlines() if ln.strip()]
    if suffix in (".csv", ".tsv"):
        return list(csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ","))
    raise ConfigError(
        f"{what}={path} is neither .csv, .tsv nor .jsonl", f"convert the file, or {otherwise}"
    )


def _read_text(path: Path) -> str:
    """UTF-8, or Latin-1 for the original rt-polarity files (which are not UTF-8)."""
    if not path.is_file():
        raise DataError(
            f"text file not found: {path}",
            "set paths.data_dir (or data.files / data.path) to where the files are",
        )
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
