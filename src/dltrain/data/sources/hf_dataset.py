"""A Hugging Face ``datasets`` dataset by Hub name (``imdb``, ``sst2``...) or a local copy
written with ``save_to_disk``, mapped onto text + label columns."""

from __future__ import annotations

from typing import Any

from dltrain import hub
from dltrain.data.sources.text import TextDataModule, TextSplit
from dltrain.data.sources.text_files import label_indices, label_names
from dltrain.errors import ConfigError, DataError


class HFDatasetDataModule(TextDataModule):
    """Texts and labels from a ``datasets`` dataset.

    Args:
        name: Hub dataset name, or a folder written by ``save_to_disk`` (a
            ``DatasetDict`` with named splits, or a single ``Dataset`` used as training data).
        config_name: the dataset's configuration (``load_dataset(name, config_name)``).
        text_column, label_column: the columns holding the text and the class.
        train_split, test_split: split names; ``test_split: null`` (or a dataset without
            it) cuts the test split from training data by ``test_fraction``.
        Other arguments as ``TextDataModule`` (validation is ``val_fraction`` of training).
    """

    def __init__(
        self,
        name: str,
        config_name: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        train_split: str = "train",
        test_split: str | None = "test",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = str(name)
        self.config_name = config_name
        self.text_column, self.label_column = text_column, label_column
        self.train_split, self.test_split = train_split, test_split

    def describe(self) -> str:
        return f"dataset '{self.name}'"

    def load(self) -> dict[str, TextSplit]:
        data = self._open()
        if not hasattr(data, "keys"):  # a single Dataset: all of it is training data
            return {"train": self._texts(data, "train")}
        available = list(data.keys())
        if self.train_split not in available:
            raise ConfigError(
                f"{self.describe()} has no split '{self.train_split}' (it has: "
                f"{', '.join(available)})",
                "set data.train_split (and data.test_split) to split names it has",
            )
        out = {"train": self._texts(data[self.train_split], self.train_split)}
        if self.test_split:
            if self.test_split not in available:
                raise ConfigError(
                    f"{self.describe()} has no split '{self.test_split}' (it has: "
                    f"{', '.join(available)})",
                    "set data.test_split to one of them, or null to cut a test split "
                    "from the training data",
                )
            out["test"] = self._texts(data[self.test_split], self.test_split)
        return out

    def _open(self) -> Any:
        import datasets

        path = hub.resolve(self.name)
        if hub.is_local(path):
            try:
                return datasets.load_from_disk(path)
            except FileNotFoundError as ex:
                raise DataError(
                    f"{path} is not a dataset saved with save_to_disk: {ex}",
                    "point data.name at the folder that save_to_disk wrote, or at a Hub name",
                ) from ex
        hub.offline()  # decides once; switches the libraries to their caches if needed
        try:
            return datasets.load_dataset(path, self.config_name)
        except (OSError, ValueError, ConnectionError) as ex:
            raise hub.not_available("dataset", self.name, str(ex).splitlines()[0]) from ex

    def _texts(self, split: Any, name: str) -> TextSplit:
        columns = list(split.column_names)
        for col in (self.text_column, self.label_column):
            if col not in columns:
                raise ConfigError(
                    f"{self.describe()} split '{name}' has no column '{col}' (columns: "
                    f"{', '.join(columns)})",
                    "map them with data.text_column=... data.label_column=...",
                )
        texts = [str(t) for t in split[self.text_column]]
        values = split[self.label_column]
        if name == "train":  # class names: a ClassLabel's (imdb: neg, pos), else the labels'
            feature = getattr(split, "features", {}).get(self.label_column)
            self.classes = list(getattr(feature, "names", None) or label_names(values))
        return TextSplit(texts, label_indices(values))
