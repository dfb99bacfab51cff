"""MNIST-1D (Greydanus, 2020): 1D "digits" generated procedurally by the ``mnist1d``
package, so it needs no download: 4,000 train + 1,000 test sequences of length 40.

Generating them takes ~2.5 s of Python on the 2-core development machine, as long as
a whole one-batch run; the generated arrays are kept in ``cache_dir`` (one ``.npz`` per
set of generation arguments, written whole or not at all) and read back by later runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from dltrain.data.loading.arguments import Size
from dltrain.data.loading.memory import InMemoryDataModule
from dltrain.data.loading.split import Split


class MNIST1DDataModule(InMemoryDataModule):
    """The dataset of ``mnist1d.data.make_dataset`` with its default arguments
    (the ones the paper's table uses), as ``(N, 1, 40)`` float sequences.

    Args:
        shuffle_positions: apply one fixed random permutation to the 40 positions
            (the package's ``shuffle_seq``): spatial structure is gone, information is not.
        num_samples: train + test sequences (80% train, as in the package).
        cache_dir: where generated sets are kept for later runs (``None``: generate
            every run).
    """

    scale = 1.0

    def __init__(
        self,
        shuffle_positions: bool = False,
        num_samples: Size = 5000,
        cache_dir: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.shuffle_positions = bool(shuffle_positions)
        self.num_samples = int(num_samples)
        self.cache_dir = Path(cache_dir) if cache_dir else None

    def load(self) -> tuple[Split, Split]:
        from mnist1d.data import get_dataset_args

        args = get_dataset_args()
        args.num_samples = self.num_samples
        args.shuffle_seq = self.shuffle_positions
        data = _generated(args, self.cache_dir)

        def split(x: np.ndarray, y: np.ndarray) -> Split:
            xs = torch.as_tensor(x, dtype=torch.float32).unsqueeze(1)
            return Split(xs, torch.as_tensor(y, dtype=torch.long))

        return split(data["x"], data["y"]), split(data["x_test"], data["y_test"])


#: The arrays of a generated dataset, as ``make_dataset`` names them.
KEYS = ("x", "y", "x_test", "y_test")


def _generated(args: object, cache_dir: Path | None) -> dict[str, np.ndarray]:
    """``make_dataset(args)``, read from ``cache_dir`` when generated there before."""
    path = None
    if cache_dir is not None:
        path = cache_dir / f"mnist1d-{_key(args)}.npz"
        stored = _read(path)
        if stored is not None:
            return stored
    data = _make(args)
    if path is not None:
        _store(path, {k: np.asarray(data[k]) for k in KEYS})
    return data


def _read(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays; ``None`` when there is no readable, whole cache file (then the
    set is generated again and the file rewritten)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            return {k: stored[k] for k in KEYS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as ex:
        logging.getLogger(__name__).warning("MNIST-1D cache %s not read: %s", path, ex)
        return None


def _key(args: object) -> str:
    """Every argument of the generation and the package's version, hashed: another set
    (or another release of the generator) is another file."""
    from importlib.metadata import version

    fields = sorted(vars(args).items())
    return hashlib.sha256(repr((version("mnist1d"), fields)).encode()).hexdigest()[:16]


def _make(args: object) -> dict[str, np.ndarray]:
    from mnist1d.data import make_dataset

    # make_dataset reseeds numpy's and Python's global generators; keep the run's.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        return make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def _store(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the cache file whole (a temporary file renamed into place); a folder that
    cannot be written only costs the next run the generation again."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
            tmp = Path(f.name)
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # readable by whoever shares the data folder, as the data is
        os.replace(tmp, path)
    except OSError as ex:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        logging.getLogger(__name__).warning("MNIST-1D not cached in %s: %s", path.parent, ex)
