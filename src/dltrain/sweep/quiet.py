"""Library chatter that says nothing to the user goes to the sweep's log file.

Optuna logs "A new study created", "There are no complete trials" and the like to
stderr through its own handler, and matplotlib warns "No artists with labels found to
put in legend" while the sweep draws its plots. The terminal keeps what the user acts
on (each trial's outcome, the leaderboard, errors); the rest lands in
``<sweep dir>/sweep.log``. Warnings raised inside a trial are the trial's business and
are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

#: Loggers whose records go to the sweep's log file only.
QUIET_LOGGERS = ("optuna", "dltrain.sweep")
log = logging.getLogger("dltrain.sweep.quiet")


@contextlib.contextmanager
def quiet_optuna_warnings() -> Iterator[None]:
    """Optuna marks some of its own features experimental on every call (the matplotlib
    plots, the journal storage, the heartbeat); the sweeper chose them knowingly."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield


@contextlib.contextmanager
def warnings_to_log() -> Iterator[None]:
    """Warnings raised by the sweeper's own library calls (study, plots): to the log."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        warnings.simplefilter("ignore", ExperimentalWarning)
        try:
            yield
        finally:
            for w in caught:
                log.warning("%s:%s: %s: %s", w.filename, w.lineno, w.category.__name__, w.message)


@contextlib.contextmanager
def library_chatter_to(path: Path) -> Iterator[None]:
    """While the sweep runs: Optuna's and the sweeper's log records go to ``path``."""
    import optuna

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s"))
    saved = []
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate, logger.level))
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
    optuna.logging.disable_default_handler()
    try:
        yield
    finally:
        optuna.logging.enable_default_handler()
        for logger, propagate, level in saved:
            logger.removeHandler(handler)
            logger.propagate = propagate
            logger.setLevel(level)
        handler.close()
