"""Optuna warnings that do not apply to how the sweeper uses it."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_optuna_warnings() -> Iterator[None]:
    """Optuna marks some of its own features experimental on every call (the matplotlib
    plots, the journal storage); the sweeper chose them knowingly."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield
