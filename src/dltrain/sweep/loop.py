"""The study loop: ask the study for trials, launch them as Hydra jobs, tell the outcome.

Ask/tell rather than ``study.optimize``: trials run as Hydra jobs through whatever
launcher is configured (in-process, joblib processes, SLURM via submitit), ``n_jobs``
at a time.

How a job finds its trial: the sweeper adds ``+trial.number``, ``+trial.study_name`` and
``+trial.storage`` to the job's overrides; the job reopens the study from that storage
(``dltrain.sweep.study.load_trial``) and reports to it. This works the same in-process
and in separate processes or machines, and the job's ``.hydra/overrides.yaml`` records
which trial it was.

``n_trials`` is the total for the study, shared by every process working on it: trials
that ended (complete, pruned, failed) or are running count; trials interrupted by Ctrl-C
or left running by a killed sweep process do not (the next start runs new ones). A
process asks for a trial and then checks its place: if ``n_trials`` trials come before
it, it hands the trial back (WAITING, for a later, larger run) and stops, so two
processes never overshoot the total.

Stopping early (``dltrain.sweep.stopping``): a failure shown to be one every trial would
share (data is missing, a class cannot be imported) stops the sweep instead of repeating
it ``n_trials`` times; so does a failed share of this process's trials above
``max_failure_rate``.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dltrain.sweep import space as sp
from dltrain.sweep import stopping
from dltrain.sweep.quiet import quiet_optuna_warnings, warnings_to_log

INTERRUPTED = "interrupted"
REASON_ATTR = "fail_reason"
#: "<host>:<pid>" of the sweep process that asked for a trial (see ``recover_orphans``).
OWNER_ATTR = "owner"


@dataclass
class Sweep:
    """What the loop needs: the study, the space, the fixed overrides and the launcher."""

    study: Any
    storage_url: str
    dims: list[sp.Dimension]
    fixed: list[str]
    n_trials: int
    n_jobs: int
    launcher: Any
    running: list[Any] = field(default_factory=list)
    #: Stop when more than this share of this process's finished trials failed.
    max_failure_rate: float = 1.0
    #: ``(cfg, trial) -> None``: suggests more parameters (hydra-optuna-sweeper's
    #: ``custom_search_space``), e.g. ones that depend on the values already drawn.
    extend_space: Any = None
    sweep_config: Any = None
    #: Outcomes of this process's trials, for the stopping rules.
    finished: int = 0
    failed: int = 0
    shared: stopping.SharedErrors = field(default_factory=stopping.SharedErrors)


def counts_toward_total(trial: Any, shared: Container[int] = ()) -> bool:
    """Whether a trial takes one of the ``n_trials`` places; ``shared``: numbers of
    trials that failed with an error every trial shares (``stopping.SHARED_TRIALS``)."""
    from optuna.trial import TrialState

    if trial.state == TrialState.WAITING:
        return False
    if trial.state == TrialState.FAIL:
        # No reason: failed by Optuna's heartbeat check, its worker died (see stale_trials).
        reason = trial.user_attrs.get(REASON_ATTR)
        shared = trial.number in shared or trial.user_attrs.get(stopping.SHARED)
        return reason is not None and reason != INTERRUPTED and not shared
    return True


def counted(study: Any) -> int:
    shared = shared_trials(study)
    return sum(counts_toward_total(t, shared) for t in study.get_trials(deepcopy=False))


def shared_trials(study: Any) -> set[int]:
    return set(study.user_attrs.get(stopping.SHARED_TRIALS, ()))


def mark_shared(study: Any, numbers: Sequence[int]) -> None:
    """These trials failed with an error every trial shares: they do not count."""
    study.set_user_attr(stopping.SHARED_TRIALS, sorted(shared_trials(study) | set(numbers)))


def ask_within_total(sweep: Sweep) -> Any | None:
    """A new trial, or None when the study already has ``n_trials``."""
    from optuna.trial import TrialState

    stale_trials(sweep.study)
    if counted(sweep.study) >= sweep.n_trials:
        return None
    trial = sweep.study.ask()
    trial.set_user_attr(OWNER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
    before = [t for t in sweep.study.get_trials(deepcopy=False) if t.number < trial.number]
    shared = shared_trials(sweep.study)
    if sum(counts_toward_total(t, shared) for t in before) >= sweep.n_trials:
        # Another process took the last place between our count and our ask.
        sweep.study._storage.set_trial_state_values(trial._trial_id, TrialState.WAITING)
        return None
    return trial


def recover_orphans(study: Any) -> list[int]:
    """RUNNING trials whose sweep process on this machine no longer exists (killed with
    SIGKILL, out of memory, a reboot) end as FAIL "interrupted", like a Ctrl-C: they stop
    counting toward ``n_trials`` and the next start runs new trials in their place.
    Optuna keeps such trials RUNNING for ever with file storage (its heartbeat exists for
    RDB storage only), so this is done here. Trials owned by other machines are left
    alone: whether their process lives cannot be told from here."""
    from optuna.trial import TrialState

    host, recovered = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner_host, _, pid = str(trial.user_attrs.get(OWNER_ATTR, "")).rpartition(":")
        if owner_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        study._storage.set_trial_user_attr(trial._trial_id, REASON_ATTR, INTERRUPTED)
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        recovered.append(trial.number)
    return recovered


def stale_trials(study: Any) -> list[int]:
    """On database storage with a heartbeat: RUNNING trials whose sweep process stopped
    sending heartbeats for ``grace_period`` (killed, on any machine) are failed by
    Optuna's own check; like interrupted trials they do not count toward ``n_trials``."""
    import optuna
    from optuna.trial import TrialState

    if not heartbeat_interval(study):
        return []
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    with quiet_optuna_warnings():  # experimental since Optuna 2.9, chosen knowingly
        optuna.storages.fail_stale_trials(study)
    after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    return sorted(before - after)


def heartbeat_interval(study: Any) -> int | None:
    """Seconds between heartbeats when the study's storage has them (a database storage
    opened with ``heartbeat_interval``; Optuna wraps it in a caching layer that passes
    these calls on), else None."""
    get = getattr(study._storage, "get_heartbeat_interval", None)
    return get() if get is not None else None


def _first_beat(study: Any, trial: Any) -> None:
    if heartbeat_interval(study):
        study._storage.record_heartbeat(trial._trial_id)


def can_end(study: Any, trial: Any) -> bool:
    """Whether a RUNNING trial of another process will end or be ended: its process
    lives on this machine, or the storage's heartbeat check fails it if it died."""
    if heartbeat_interval(study):
        return True
    owner_host, _, pid = str(trial.user_attrs.get(OWNER_ATTR, "")).rpartition(":")
    return owner_host == socket.gethostname() and pid.isdigit() and _alive(int(pid))


@contextlib.contextmanager
def heartbeat(sweep: Sweep) -> Iterator[None]:
    """While the sweep runs: record a heartbeat for each of its running trials every
    ``heartbeat_interval`` seconds (database storage with a heartbeat only). Optuna
    does this itself inside ``study.optimize``; the ask/tell loop has to. Another
    worker's ``fail_stale_trials`` fails the trials of a process that stopped beating."""
    storage = sweep.study._storage
    interval = heartbeat_interval(sweep.study)
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            for trial in list(sweep.running):
                with contextlib.suppress(Exception):  # the trial may have just ended
                    storage.record_heartbeat(trial._trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def job_overrides(sweep: Sweep, trial: Any) -> list[str]:
    params = sp.suggest(trial, sweep.dims)
    if sweep.extend_space is not None:
        sweep.extend_space(sweep.sweep_config, trial)
        params = {**params, **{k: v for k, v in trial.params.items() if k not in params}}
    name = sp.quote(sweep.study.study_name)
    trial_keys = [
        f"+trial.number={trial.number}",
        f"+trial.study_name={name}",
        f"+trial.storage={sp.quote(sweep.storage_url)}",
        # A study_name left null is the study's name in the trial's directory too.
        f"hydra.sweeper.study_name={name}",
    ]
    return [*sweep.fixed, *sp.to_overrides(params), *trial_keys]


def run_trials(sweep: Sweep) -> None:
    """Launch batches of ``n_jobs`` trials until the study has ``n_trials``."""
    while True:
        batch = []
        for _ in range(sweep.n_jobs):
            with warnings_to_log():
                trial = ask_within_total(sweep)
            if trial is None:
                break
            batch.append(trial)
            sweep.running.append(trial)
            _first_beat(sweep.study, trial)
        if not batch:
            return
        with warnings_to_log():  # e.g. TPE on parameters a custom space adds
            overrides = [job_overrides(sweep, t) for t in batch]
        try:
            returns = sweep.launcher.launch(overrides, initial_job_idx=batch[0].number)
        except Exception as ex:  # noqa: BLE001 - e.g. a sampled group option that does not exist
            from dltrain.errors import describe

            for trial in batch:
                fail(sweep.study, trial, describe(ex)[1])
                sweep.running.remove(trial)
            # Which job's values failed to compose is not known: no values to compare.
            _after_batch(sweep, [(t, None, ex) for t in batch])
            continue
        outcomes = []
        for trial, ret in zip(batch, returns, strict=True):
            error = record(sweep.study, trial, ret)
            sweep.running.remove(trial)
            outcomes.append((trial, trial.params, error))
        _after_batch(sweep, outcomes)


def _after_batch(sweep: Sweep, outcomes: list[tuple[Any, Any, BaseException | None]]) -> None:
    """Count the batch's outcomes, ``(trial, its sampled values, error or None)``;
    raise ``stopping.SweepStopped`` when the sweep should not go on."""
    failures = [(trial, error) for trial, _, error in outcomes if error is not None]
    sweep.finished += len(outcomes)
    sweep.failed += len(failures)
    shared = sweep.shared.judge([(t.number, params, e) for t, params, e in outcomes])
    if shared is not None:
        mark_shared(sweep.study, shared.numbers)
        raise stopping.SweepStopped(shared.number, shared.error, shared=True)
    if failures and sweep.failed / sweep.finished > sweep.max_failure_rate:
        trial, error = failures[-1]
        raise stopping.SweepStopped(trial.number, error, shared=False)


def record(study: Any, trial: Any, ret: Any) -> BaseException | None:
    """Tell the study how a job ended: COMPLETE, PRUNED, or FAIL with the reason (the
    error is returned for the stopping rules)."""
    import optuna
    from hydra.core.utils import JobStatus
    from optuna.trial import TrialState

    from dltrain.errors import describe

    if ret.hydra_cfg is not None:
        trial.set_user_attr("run_dir", str(ret.hydra_cfg.hydra.runtime.output_dir))
    if ret.status == JobStatus.COMPLETED:
        values = objective_values(ret.return_value, len(study.directions))
        if isinstance(values, str):
            fail(study, trial, values)
            return ValueError(values)
        tell(study, trial, values=values)
        shown = ", ".join(f"{v:.6g}" for v in values)
        print(f"trial {trial.number}: complete, value {shown}", flush=True)
        return None
    error = ret._return_value  # the exception; ret.return_value would re-raise it
    if _stopped_by_signal(error):
        # SIGTERM/SIGINT reached the trial (which saved its checkpoint): stop the whole
        # sweep as Ctrl-C does; the caller records the running trials as interrupted.
        raise KeyboardInterrupt
    if isinstance(error, optuna.TrialPruned):
        tell(study, trial, state=TrialState.PRUNED)
        print(f"trial {trial.number}: pruned ({error})", flush=True)
        return None
    fail(study, trial, describe(error)[1])
    return error


def objective_values(value: Any, n_objectives: int) -> list[float] | str:
    """The job's return value as the study's objective values, or why it cannot be."""
    many = value if isinstance(value, (list, tuple)) else [value]
    if len(many) != n_objectives:
        return (
            f"the run returned {len(many)} value(s) for {n_objectives} objective(s) — "
            "give as many optimized_metric names as hydra.sweeper.direction entries"
        )
    for v in many:
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"the optimized metric is {v}, not a finite number"
    return [float(v) for v in many]


def _stopped_by_signal(error: BaseException | None) -> bool:
    from dltrain.checkpointing.signals import Interrupted

    return isinstance(error, (Interrupted, KeyboardInterrupt))


def fail(study: Any, trial: Any, reason: str) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr(REASON_ATTR, reason)
    tell(study, trial, state=TrialState.FAIL)
    print(f"trial {trial.number}: failed: {reason}", flush=True)


def interrupt(study: Any, trials: Sequence[Any]) -> None:
    """Ctrl-C: the running trials end as FAIL "interrupted" and do not count, so the
    next start of the same command runs them again."""
    from optuna.trial import TrialState

    for trial in trials:
        trial.set_user_attr(REASON_ATTR, INTERRUPTED)
        tell(study, trial, state=TrialState.FAIL)


def tell(study: Any, trial: Any, **outcome: Any) -> None:
    """``study.tell``, tolerating the grid sampler's ``study.stop()`` once its grid is
    done: that call only works inside ``study.optimize`` and raises in ask/tell use,
    after the trial's state is already stored. The sweeper caps ``n_trials`` at the
    grid's size, so the loop ends there by itself."""
    try:
        with warnings_to_log():
            study.tell(trial, **outcome)
    except RuntimeError as ex:
        if "Study.stop" not in str(ex):
            raise
