"""When a sweep should not go on: errors every trial would share, too many failures, and
an ``optimized_metric`` the run cannot log (checked before the first trial).

Why: a sweep whose metric is misspelled, whose data is missing or whose class does not
import used to run every trial to its end and record each as failed (lightning-hydra-
template issue #236: a whole GPU budget for one typo). A failure is taken as shared
when it is the first thing this sweep process saw end, it is a mistake in the setup
(a config, data, composition or import error, not a runtime failure such as a NaN
loss or running out of memory, which depend on the values), and its message names
none of the searched keys or sampled values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from dltrain.config.task import task_before_data
from dltrain.errors import ConfigError, RunError, UserError, describe, did_you_mean, find_user_error
from dltrain.module import logged

#: User attribute of a trial whose error stopped the sweep; it does not count.
SHARED = "shared_error"


class SweepStopped(Exception):
    """The sweep stops after trial ``number`` failed with ``error``."""

    def __init__(self, number: int, error: BaseException, shared: bool) -> None:
        self.number = number
        self.error = error
        self.shared = shared
        super().__init__(describe(error)[1])

    def explanation(self, max_failure_rate: float) -> str:
        if self.shared:
            return (
                f"sweep stopped: trial {self.number} failed for a reason that does not depend "
                "on its sampled values, so every trial would fail the same way "
                "(that trial does not count toward n_trials)"
            )
        return (
            f"sweep stopped: more than {max_failure_rate:g} of its trials failed "
            "(hydra.sweeper.max_failure_rate), the last one trial "
            f"{self.number}"
        )

    def as_user_error(self) -> UserError:
        """The error line the CLI prints: the trial's own. A shared error exits 2 (the
        sweep's setup cannot work as it is); past max_failure_rate, the error's own
        code (1 for a runtime failure such as a NaN loss)."""
        user = find_user_error(self.error)
        code, message = describe(self.error)
        if self.shared:
            return ConfigError(user.what, user.fix) if user else ConfigError(message)
        if user is not None:
            return user
        return ConfigError(message) if code == 2 else RunError(message)


def is_shared(error: BaseException, params: Mapping[str, Any]) -> bool:
    """Whether ``error`` would be the same for any sampled values (see the module doc)."""
    user = find_user_error(error)
    if isinstance(user, RunError):
        return False
    code, message = describe(error)
    setup_error = user is not None or _import_error(error) or (code == 2)
    if not setup_error:
        return False
    named = [str(k) for k in params] + [_text(v) for v in params.values()]
    return not any(word and word in message for word in named)


def _import_error(error: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = error
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ImportError) or "Error locating target" in str(cur):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _text(value: Any) -> str:
    """A sampled value as it would appear in a message; short numbers are skipped (a
    "0" or "1" occurs in many messages by chance)."""
    text = str(value)
    return text if len(text) >= 3 else ""


def metric_names(value: Any) -> list[str]:
    """``optimized_metric`` as a list of names (one per objective)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, ListConfig)):
        return [str(v) for v in value]
    return [str(value)]


def check_metrics(job: DictConfig, directions: Sequence[str] | None) -> None:
    """Before the first trial: as many metrics as directions (``None``: directions not
    given, one will follow each name), and, for the built-in module, names it logs
    (``dltrain.module.logged``)."""
    names = metric_names(job.get("optimized_metric"))
    if not names:
        raise ConfigError(
            "a sweep needs optimized_metric, the value it optimizes",
            "set optimized_metric=val/acc_best (or another logged metric)",
        )
    if directions is not None and len(names) != len(directions):
        raise ConfigError(
            f"optimized_metric has {len(names)} name(s) but hydra.sweeper.direction has "
            f"{len(directions)}",
            "give one direction per optimized metric, e.g. optimized_metric=[val/loss,"
            "val/acc_best] hydra.sweeper.direction=[minimize,maximize]",
        )
    module = job.get("module")
    if module is not None and module.get("_target_") not in (
        None,
        logged.CLASSIFIER,
        logged.REGRESSOR,
    ):
        return  # the user's own module: its metrics are known only once it runs
    task = task_before_data(job)
    if task is None:
        return  # a table's task (and so its metrics) is known once the table is read
    extra = job.get("metrics")
    extra = OmegaConf.to_container(extra, resolve=True) if OmegaConf.is_dict(extra) else None
    known = logged.names(extra, task)
    for name in names:
        if not logged.is_logged(name, extra, task):
            raise ConfigError(
                f"optimized_metric '{name}' is not a metric dl-train logs"
                f"{did_you_mean(name, known)}",
                f"use one of: {', '.join(known)}, {logged.LR_PREFIX}<optimizer>",
            )
        if name.startswith("test/") and not job.get("test", True):
            raise ConfigError(
                f"optimized_metric '{name}' is logged only when the run tests (test=false)",
                "set test=true or optimize a val/ metric",
            )
