"""MNIST-1D (Greydanus, 2020): 1D "digits" generated procedurally by the ``mnist1d``
package, so it needs no download: 4,000 train + 1,000 test sequences of length 40."""

from __future__ import annotations

import random

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
    """

    scale = 1.0

    def __init__(self, shuffle_positions: bool = False, num_samples: Size = 5000, **kwargs) -> None:
        super().__init__(**kwargs)
        self.shuffle_positions = bool(shuffle_positions)
        self.num_samples = int(num_samples)

    def load(self) -> tuple[Split, Split]:
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples = self.num_samples
        args.shuffle_seq = self.shuffle_positions
        # make_dataset reseeds numpy's and Python's global generators; keep the run's.
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            data = make_dataset(args)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)

        def split(x: np.ndarray, y: np.ndarray) -> Split:
            xs = torch.as_tensor(x, dtype=torch.float32).unsqueeze(1)
            return Split(xs, torch.as_tensor(y, dtype=torch.long))

        return split(data["x"], data["y"]), split(data["x_test"], data["y_test"])
