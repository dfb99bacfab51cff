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
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dltrain.sweep import space as sp

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


def counts_toward_total(trial: Any) -> bool:
    from optuna.trial import TrialState

    if trial.state == TrialState.WAITING:
        return False
    if trial.state == TrialState.FAIL:
        return trial.user_attrs.get(REASON_ATTR) != INTERRUPTED
    return True


def counted(study: Any) -> int:
    return sum(counts_toward_total(t) for t in study.get_trials(deepcopy=False))


def ask_within_total(sweep: Sweep) -> Any | None:
    """A new trial, or None when the study already has ``n_trials``."""
    from optuna.trial import TrialState

    if counted(sweep.study) >= sweep.n_trials:
        return None
    trial = sweep.study.ask()
    trial.set_user_attr(OWNER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
    before = [t for t in sweep.study.get_trials(deepcopy=False) if t.number < trial.number]
    if sum(counts_toward_total(t) for t in before) >= sweep.n_trials:
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
    trial_keys = [
        f"+trial.number={trial.number}",
        f"+trial.study_name={sp.quote(sweep.study.study_name)}",
        f"+trial.storage={sp.quote(sweep.storage_url)}",
    ]
    return [*sweep.fixed, *sp.to_overrides(params), *trial_keys]


def run_trials(sweep: Sweep) -> None:
    """Launch batches of ``n_jobs`` trials until the study has ``n_trials``."""
    while True:
        batch = []
        for _ in range(sweep.n_jobs):
            trial = ask_within_total(sweep)
            if trial is None:
                break
            batch.append(trial)
            sweep.running.append(trial)
        if not batch:
            return
        overrides = [job_overrides(sweep, t) for t in batch]
        try:
            returns = sweep.launcher.launch(overrides, initial_job_idx=batch[0].number)
        except Exception as ex:  # noqa: BLE001 - e.g. a sampled group option that does not exist
            from dltrain.errors import describe

            for trial in batch:
                fail(sweep.study, trial, describe(ex)[1])
                sweep.running.remove(trial)
            continue
        for trial, ret in zip(batch, returns, strict=True):
            record(sweep.study, trial, ret)
            sweep.running.remove(trial)


def record(study: Any, trial: Any, ret: Any) -> None:
    """Tell the study how a job ended: COMPLETE, PRUNED, or FAIL with the reason."""
    import optuna
    from hydra.core.utils import JobStatus
    from optuna.trial import TrialState

    from dltrain.errors import describe

    if ret.hydra_cfg is not None:
        trial.set_user_attr("run_dir", str(ret.hydra_cfg.hydra.runtime.output_dir))
    if ret.status == JobStatus.COMPLETED:
        value = ret.return_value
        if isinstance(value, (int, float)) and math.isfinite(value):
            tell(study, trial, values=float(value))
            print(f"trial {trial.number}: complete, value {value:.6g}", flush=True)
            return
        fail(study, trial, f"the optimized metric is {value}, not a finite number")
        return
    error = ret._return_value  # the exception; ret.return_value would re-raise it
    if _stopped_by_signal(error):
        # SIGTERM/SIGINT reached the trial (which saved its checkpoint): stop the whole
        # sweep as Ctrl-C does; the caller records the running trials as interrupted.
        raise KeyboardInterrupt
    if isinstance(error, optuna.TrialPruned):
        tell(study, trial, state=TrialState.PRUNED)
        print(f"trial {trial.number}: pruned ({error})", flush=True)
        return
    fail(study, trial, describe(error)[1])


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
        study.tell(trial, **outcome)
    except RuntimeError as ex:
        if "Study.stop" not in str(ex):
            raise
