"""Synthetic stand-ins for data that is not on this machine, for ``dl-smoke``.

A smoke run checks wiring (configs compose, classes import, shapes fit), not data. While
``standing_in()`` is active, ``wrap`` gives a built data module a fallback: when reading
its data fails because the data is absent (a ``DataError``: missing files or folders; or
a Hub dataset while the Hub cannot be reached), the module gets random data of the shape,
class count and dtype it declares instead (a table: a CSV with the columns its config
declares), and the reason is noted for the smoke table.
Everything after reading (splits, normalisation, augmentation, tokenising, batching) is
still the module's own code, so the smoke run still checks it.

Outside ``standing_in()`` (every ``dl-train``), ``wrap`` returns the module untouched.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dltrain import hub
from dltrain.data.loading.memory import InMemoryDataModule
from dltrain.data.loading.split import Split
from dltrain.data.sources.text import TextDataModule, TextSplit
from dltrain.errors import ConfigError, DataError

if TYPE_CHECKING:
    from dltrain.data.sources.tabular import TabularDataModule

#: The words synthetic texts are made of; ``dl-smoke``'s stand-in tokenizer knows them all.
WORDS = tuple(f"word{i}" for i in range(200))

#: Rows of a synthetic table: enough for a stratified test and validation split.
TABLE_ROWS = 200

_notes: list[str] | None = None
_folder: Path | None = None


@contextmanager
def standing_in(folder: Path | None = None) -> Iterator[list[str]]:
    """Within: data modules built by ``wrap`` fall back to synthetic data; the list
    yielded collects one note per module that did (why its data was absent).
    ``folder``: where a synthetic table is written (default: a temporary folder)."""
    global _notes, _folder
    outer = _notes, _folder
    _notes, _folder = [], folder
    try:
        yield _notes
    finally:
        _notes, _folder = outer


def wrap(dm: Any) -> Any:
    """``dm`` with a synthetic fallback for its ``load`` (and ``prepare_data``, which may
    read the data first) while ``standing_in()`` is active; else ``dm`` as it is."""
    if _notes is None:
        return dm
    # Imported here: the tables' module imports pandas (0.3-0.5 s), which a run that
    # reads no table, smoke-run or not, should not pay for.
    from dltrain.data.sources.tabular import TabularDataModule

    if isinstance(dm, TabularDataModule):
        _fall_back_table(dm)
    elif isinstance(dm, InMemoryDataModule):
        _fall_back(dm, lambda: synthetic_splits(dm))
    elif isinstance(dm, TextDataModule):
        _fall_back(dm, lambda: synthetic_texts(dm))
    return dm


def _fall_back(dm: Any, synthetic: Callable[[], Any]) -> None:
    """Replace ``dm.load``/``dm.prepare_data`` on the instance: the real ones first; on
    absent data, the synthetic splits (and no cache of them)."""
    notes = _notes
    assert notes is not None
    real_load, real_prepare = dm.load, dm.prepare_data
    absent: list[str] = []

    def guarded(call: Callable[[], Any]) -> Any:
        if absent:
            return None
        try:
            return call()
        except (DataError, ConfigError) as ex:
            if not _is_absence(dm, ex):
                raise
            absent.append(ex.what)
            notes.append(f"{type(dm).__name__}: {ex.what}")
            return None

    def prepare_data() -> None:
        guarded(real_prepare)

    def load() -> Any:
        real = guarded(real_load)
        if not absent:
            return real
        if hasattr(dm, "cache_dir"):
            dm.cache_dir = None  # random data is not worth a cache entry
        return synthetic()

    dm.prepare_data, dm.load = prepare_data, load


def _fall_back_table(dm: TabularDataModule) -> None:
    """A table that is not there: a synthetic CSV with the columns the config declares
    (target, numeric, categorical; generic ones where it declares none), then the real
    ``prepare_table`` on it: reading, splitting and preprocessing are still checked."""
    notes, folder = _notes, _folder
    assert notes is not None
    real = dm.prepare_table

    def prepare_table(state: dict[str, Any] | None = None) -> Any:
        if dm.state is None and not Path(dm.path).is_file():
            where = Path(folder or tempfile.mkdtemp(prefix="dl-smoke-table-"))
            notes.append(f"{type(dm).__name__}: table {dm.path} does not exist")
            dm.path = str(synthetic_table(dm, where / "synthetic_table.csv"))
        return real(state)

    dm.prepare_table = prepare_table


def synthetic_table(dm: TabularDataModule, path: Path) -> Path:
    """A CSV of ``TABLE_ROWS`` random rows: the declared numeric columns (else ``x0``..
    ``x3``) as floats, the declared categorical ones (else ``c0``) with 3 levels, and the
    target: ``num_classes`` class names for classification, positive floats for
    regression (a log transform works on them)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(dm.seed)
    numeric, categorical, _ = dm.declared
    columns: dict[str, Any] = {}
    for name in numeric or [f"x{i}" for i in range(4)]:
        columns[name] = rng.normal(size=TABLE_ROWS)
    for name in categorical or ["c0"]:
        columns[name] = rng.choice(["a", "b", "c"], size=TABLE_ROWS)
    if dm.task == "regression":
        columns[dm.target] = rng.lognormal(size=TABLE_ROWS)
    else:
        classes = max(int(dm.num_classes), 2)
        columns[dm.target] = [f"class{i % classes}" for i in rng.permutation(TABLE_ROWS)]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


def _is_absence(dm: Any, ex: DataError | ConfigError) -> bool:
    """A ``DataError`` says the data on disk is missing or unreadable; a ``ConfigError``
    counts only for a Hub dataset (``data.name``) that is not a local folder while the
    Hub cannot be reached: then the local cache, the only place left, lacked it."""
    if isinstance(ex, DataError):
        return True
    name = getattr(dm, "name", None)
    if not isinstance(name, str):
        return False
    try:
        local = hub.is_local(hub.resolve(name))
    except ConfigError:  # a path that is not a folder: the user's mistake, not absence
        return False
    return not local and hub.offline()


def sizes(batch_size: int) -> tuple[int, int]:
    """Rows of the synthetic train and test splits: two training batches (a validation
    cut leaves at least one) and one test batch; no more, since a smoke run reads one."""
    return max(2 * batch_size, 10), max(batch_size, 2)


def _labels(n: int, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """Every class present (a class count check sees them all), in random order."""
    return (torch.arange(n) % num_classes)[torch.randperm(n, generator=gen)]


def synthetic_splits(dm: InMemoryDataModule) -> tuple[Split, Split]:
    """Random inputs of ``dm``'s stored shape (``cache_shape``) and dtype: ``uint8``
    images where it stores 0..255 values (``scale`` 255), else ``float32``."""
    gen = torch.Generator().manual_seed(dm.seed)
    n_train, n_test = sizes(dm.batch_size)

    def split(n: int) -> Split:
        shape = (n, *dm.cache_shape)
        if dm.scale == 255.0:
            x = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
        else:
            x = torch.randn(shape, generator=gen)
        return Split(x, _labels(n, dm.num_classes, gen))

    return split(n_train), split(n_test)


def synthetic_texts(dm: TextDataModule) -> dict[str, TextSplit]:
    """Random sentences of ``WORDS``, 1 to ``max_length`` words long (the longest are
    truncated by the tokenizer, as long real texts are), with every class present."""
    gen = torch.Generator().manual_seed(dm.seed)
    n_train, n_test = sizes(dm.batch_size)

    def split(n: int) -> TextSplit:
        lengths = torch.randint(1, dm.max_length + 1, (n,), generator=gen).tolist()
        picks = torch.randint(0, len(WORDS), (sum(lengths),), generator=gen).tolist()
        texts, start = [], 0
        for length in lengths:
            texts.append(" ".join(WORDS[i] for i in picks[start : start + length]))
            start += length
        return TextSplit(texts, _labels(n, dm.num_classes, gen).tolist())

    return {"train": split(n_train), "test": split(n_test)}
