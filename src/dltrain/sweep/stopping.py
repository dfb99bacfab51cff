"""When a sweep should not go on: errors every trial would share, too many failures, and
an ``optimized_metric`` the run cannot log (checked before the first trial).

Why: a sweep whose metric is misspelled, whose data is missing or whose class does not
import used to run every trial to its end and record each as failed (lightning-hydra-
template issue #236: a whole GPU budget for one typo). Whether a failure is one every
trial shares is decided on evidence, never on the wording of its message:

- before trial 0 the sweeper builds the objects of the config it starts from, without
  sampled values (``dltrain.sweep.run``); a failure there is shared by construction;
- a trial's failure is shared when building that config (further: its data is read)
  fails with the same message, or when the first ``FIRST_K`` failures, with distinct
  sampled values among which every searched key took two values or more, all failed
  with the same message (``SharedErrors``);
- once a trial of this sweep process completed or was pruned (a sibling in the same
  batch too, with ``n_jobs > 1``), no failure is shared: the setup works for some values.
  Runtime failures (``RunError``: a NaN loss, running out of memory) depend on the
  values and are never shared; ``max_failure_rate`` is there for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from dltrain.config.task import task_before_data
from dltrain.errors import ConfigError, RunError, UserError, describe, did_you_mean, find_user_error
from dltrain.module import logged

#: User attribute of a trial whose error stopped the sweep; it does not count (older
#: studies; now the study's ``SHARED_TRIALS`` attribute lists them).
SHARED = "shared_error"
#: Study attribute: numbers of the trials that failed with a shared error. They do not
#: count toward ``n_trials``: the same command, once fixed, still gets its whole total.
SHARED_TRIALS = "dltrain:shared_error_trials"
#: Failures with distinct sampled values, all with one message, that make it shared.
FIRST_K = 3


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
                "(trials that failed for it do not count toward n_trials)"
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
            return shared_error(self.error)
        if user is not None:
            return user
        return ConfigError(message) if code == 2 else RunError(message)


def shared_error(error: BaseException) -> ConfigError:
    """A shared failure as the CLI reports it: its own line, exit 2."""
    user = find_user_error(error)
    return ConfigError(user.what, user.fix) if user else ConfigError(describe(error)[1])


@dataclass
class Shared:
    """Trial ``number`` failed with ``error``, an error every trial would share;
    ``numbers``: this sweep's trials that failed with it."""

    number: int
    error: BaseException
    numbers: list[int]


@dataclass
class SharedErrors:
    """The evidence that a failure does not depend on the sampled values (module doc).

    ``base_error``: builds the config the sweep started from, without sampled values,
    as far as a run's setup goes, and returns its error message (``None``: it builds);
    asked once, at the first failure. ``enabled``: ``hydra.sweeper.stop_on_shared_error``.
    """

    base_error: Callable[[], str | None] | None = None
    enabled: bool = True
    k: int = FIRST_K
    #: A trial of this process completed or was pruned: no failure is shared any more.
    went_on: bool = False
    #: (trial number, sampled values or None when unknown, message) of each failure.
    failures: list[tuple[int, dict[str, Any] | None, str]] = field(default_factory=list)
    _base: list[str | None] = field(default_factory=list)

    def judge(
        self, outcomes: Sequence[tuple[int, Mapping[str, Any] | None, BaseException | None]]
    ) -> Shared | None:
        """One batch's outcomes, ``(number, params, error or None)``: the first failure
        shown to be shared, or None. ``params`` None: the values that failed are not
        known (a launch that failed for the whole batch); such failures are compared with
        the base only."""
        if any(error is None for *_, error in outcomes):
            self.went_on = True
        if self.went_on or not self.enabled:
            return None
        for number, params, error in outcomes:  # in trial order, as the batch was asked
            assert error is not None
            message = describe(error)[1]
            self.failures.append((number, None if params is None else dict(params), message))
            if isinstance(find_user_error(error), RunError):
                continue  # it depends on the values
            if message == self.base_message() or self.first_agree(message):
                numbers = [n for n, _, m in self.failures if m == message]
                return Shared(number, error, numbers)
        return None

    def base_message(self) -> str | None:
        """The error of the config without sampled values (built once, lazily)."""
        if self.base_error is None:
            return None
        if not self._base:
            self._base.append(self.base_error())
        return self._base[0]

    def first_agree(self, message: str) -> bool:
        """Every failure so far ended with ``message``, ``k`` or more of them with
        distinct sampled values, and every searched key took two values among them."""
        if any(m != message or p is None for _, p, m in self.failures):
            return False
        distinct = {_values_key(p): p for _, p, _ in self.failures if p is not None}
        if len(distinct) < self.k:
            return False
        keys = {key for params in distinct.values() for key in params}
        return all(len({repr(p.get(key)) for p in distinct.values()}) >= 2 for key in keys)


def _values_key(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), repr(v)) for k, v in params.items()))


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
