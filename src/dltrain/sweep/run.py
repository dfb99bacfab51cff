"""``dl-train -m hparams_search=...``: from the sweeper's settings to a finished study."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from dltrain.config import task as run_task
from dltrain.config.checks import check_multirun_processes
from dltrain.errors import ConfigError, RunError, describe
from dltrain.sweep import loop, report, stopping
from dltrain.sweep import study as st
from dltrain.sweep.quiet import library_chatter_to, warnings_to_log
from dltrain.sweep.space import Dimension, from_override, parse_space

LOG_FILE = "sweep.log"
#: Seconds between looks at trials other workers are still running, at the end.
POLL_S = 1.0


#: ``(cfg, deep) -> None``: checks the config and builds what a run builds before it
#: trains (data module, net, LightningModule; ``deep``: the data read too), raising what
#: the run would raise. Given by the sweeper plugin (the builders live in
#: ``dltrain.commands``).
Build = Callable[[DictConfig, bool], None]


def run_sweep(sweeper: Any, arguments: list[str], build: Build | None = None) -> dict[str, Any]:
    """Run the study to ``n_trials`` and report; Ctrl-C stops after recording which
    trials were cut short, and the same command continues. ``build``: see ``Build``
    (None: no objects are built before the trials, nor to judge a failure)."""
    cfg: DictConfig = sweeper.config
    settings = {k: _plain(v) for k, v in sweeper.settings.items()}
    name_study(cfg, settings)
    sweep_dir = Path(str(cfg.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, sweep_dir / "multirun.yaml")
    with library_chatter_to(sweep_dir / LOG_FILE):
        return _run(sweeper, cfg, settings, sweep_dir, arguments, build)


def _run(
    sweeper: Any,
    cfg: DictConfig,
    settings: dict[str, Any],
    sweep_dir: Path,
    arguments: list[str],
    build: Build | None,
) -> dict[str, Any]:
    params = {**(settings.get("search_space") or {}), **(settings.get("params") or {})}
    fixed, dims = split_arguments(sweeper, arguments, params)
    # One composed trial config (every searched key at an example value): composition
    # errors and a metric the run cannot log stop here, before any trial.
    load = sweeper.hydra_context.config_loader.load_sweep_config
    examples = [_example(d) for d in dims]
    example = load(cfg, [*fixed, *examples])
    # A direction left out follows each metric's name: a name the run never logs is
    # reported first, before the direction it cannot tell.
    given = settings.get("direction")
    given_directions = st.directions(given) if run_task.direction_given(given) else None
    stopping.check_metrics(example, given_directions)
    # Multi-process trials run one at a time, each starting its own ranks (runtime/
    # job_processes.py); a launcher running several at once is refused here, before any
    # study or trial exists (one error line).
    check_multirun_processes(example, launcher=str(cfg.hydra.launcher.get("_target_", "")))
    extend = st.custom_space(settings.get("custom_search_space"))
    if _runs_elsewhere(cfg):  # e.g. SLURM: data paths may exist on the nodes only
        build = None
    base = Base(lambda more: load(cfg, [*fixed, *more]), examples, build)
    # The objects built once without sampled values: a table is read, so its task and
    # the metric the run logs are known; the checks run again with them.
    settled = base.settle()
    stopping.check_metrics(settled, given_directions)
    task = run_task.task_before_data(settled)
    names = stopping.metric_names(example.get("optimized_metric"))  # as written
    directions = st.directions(run_task.sweep_directions(given, names, task))
    names = [run_task.logged_name(name, task) for name in names]  # as the trials log them
    url = st.storage_url(settings.get("storage"), sweep_dir)
    with warnings_to_log():
        study = st.open_study(
            study_name(settings, cfg),
            url,
            directions,
            load_if_exists=bool(settings["load_if_exists"]),
            heartbeat=(settings.get("heartbeat_interval"), settings.get("grace_period")),
        )
        _recover(study)
        sampler = settings.get("sampler")
        sampler = st.DEFAULT_SAMPLER if sampler is None else sampler
        study.sampler = st.make_sampler(st.continued_seed(sampler, study), dims)
        study.set_user_attr(st.PRUNER_ATTR, st.pruner_spec(settings.get("pruner")))
    metric = report.metric_label(names)  # as the trials log it (a table may rename it)
    shared = stopping.SharedErrors(
        base.deep_error if build is not None else None,
        enabled=bool(settings.get("stop_on_shared_error", True)),
    )
    sweep = loop.Sweep(
        study=study,
        storage_url=url,
        dims=dims,
        fixed=fixed,
        n_trials=_n_trials(settings, dims),
        n_jobs=max(1, int(settings["n_jobs"])),
        launcher=sweeper.launcher,
        max_failure_rate=_rate(settings.get("max_failure_rate")),
        extend_space=extend,
        sweep_config=cfg,
        shared=shared,
    )
    print(
        f"study '{study.study_name}' in {url}: {loop.counted(study)} of {sweep.n_trials} "
        f"trials done, {len(dims)} searched parameters",
        flush=True,
    )
    if len(directions) > 1:
        print("several objectives: trials are not pruned (Optuna cannot)", flush=True)
    previous = signal.signal(signal.SIGTERM, _stop_sweep)
    try:
        with loop.heartbeat(sweep):
            loop.run_trials(sweep)
    except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C into SystemExit(1)
        loop.interrupt(study, sweep.running)
        report.write_report(study, sweep_dir, fixed, metric)
        raise KeyboardInterrupt from None
    except stopping.SweepStopped as stop:
        report.write_report(study, sweep_dir, fixed, metric)
        print(stop.explanation(sweep.max_failure_rate), flush=True)
        raise stop.as_user_error() from stop.error
    finally:
        signal.signal(signal.SIGTERM, previous)
    _wait_for_other_workers(study)
    summary = report.write_report(study, sweep_dir, fixed, metric)
    report.print_leaderboard(summary, sweep_dir)
    if not summary["counts"].get("COMPLETE"):
        raise RunError(
            f"no trial of study '{study.study_name}' completed "
            f"({report.counts_text(summary['counts'])})",
            f"see each trial's reason above or in {sweep_dir}/sweep_summary.json",
        )
    return summary


def study_name(settings: dict[str, Any], cfg: DictConfig) -> str:
    """``study_name``; null (hydra-optuna-sweeper's default) names the study after the
    ``hparams_search`` option, else the task."""
    name = settings.get("study_name")
    if name is not None and str(name) != "":
        return str(name)
    choice = OmegaConf.select(cfg, "hydra.runtime.choices.hparams_search")
    return str(choice or cfg.get("task_name") or "study")


def name_study(cfg: DictConfig, settings: dict[str, Any]) -> None:
    """Write the study's name into ``hydra.sweeper.study_name`` (and ``settings``) when
    it was left null, so that a sweep directory that uses it (``sweeps/${hydra.sweeper.
    study_name}``) is named after the study, not ``None``. The trials get it as an
    override (``loop.job_overrides``)."""
    name = study_name(settings, cfg)
    settings["study_name"] = name
    with read_write(cfg), open_dict(cfg):
        cfg.hydra.sweeper.study_name = name


class Base:
    """The config the sweep starts from, without sampled values, built as a run builds
    it before training (``Build``). ``load(overrides)``: the composed config with the
    fixed overrides and ``overrides``; ``examples``: every searched key at an example
    value."""

    def __init__(
        self, load: Callable[[list[str]], DictConfig], examples: list[str], build: Build | None
    ):
        self.compose = load
        self.examples = examples
        self.build = build

    def load(self, overrides: list[str]) -> DictConfig:
        """The job's config as its task gets it: without the ``hydra`` node."""
        cfg = self.compose(overrides)
        with read_write(cfg), open_dict(cfg):
            del cfg["hydra"]
        return cfg

    def settle(self) -> DictConfig:
        """Before trial 0: build the objects once (a table is read: the config learns
        its task and metric names). A failure that the example values share is shared by
        construction: the sweep stops (``ConfigError``, exit 2, the error's own line).
        One they do not share depends on the values: the sweep goes on."""
        base = self.load([])
        if self.build is None:
            return base
        error = self.error(base, deep=False)
        if error is None:
            return base
        example = self.load(self.examples)
        other = self.error(example, deep=False)
        if other is None:
            return example
        if describe(other)[1] == describe(error)[1]:
            print(
                "sweep stopped before its first trial: the config fails to build without "
                "sampled values and at example values alike, so every trial would fail "
                "the same way",
                flush=True,
            )
            raise stopping.shared_error(error) from error
        return base

    def deep_error(self) -> str | None:
        """The error message of the config without sampled values, built and its data
        read (``stopping.SharedErrors.base_error``); None when it builds."""
        error = self.error(self.load([]), deep=True)
        return None if error is None else describe(error)[1]

    def error(self, cfg: DictConfig, deep: bool) -> Exception | None:
        assert self.build is not None
        try:
            with warnings_to_log():
                self.build(cfg, deep)
        except Exception as ex:  # noqa: BLE001 - whatever a run would fail with
            return ex
        return None


def _runs_elsewhere(cfg: DictConfig) -> bool:
    """Whether the launcher runs the trials on other machines (SLURM via submitit),
    where data paths and installed packages may differ from this one's."""
    return "submitit" in str(cfg.hydra.launcher.get("_target_", ""))


def _recover(study: Any) -> None:
    for number in loop.recover_orphans(study):
        print(
            f"trial {number} was left running by a sweep process that no longer exists: "
            "recorded as interrupted, it does not count toward n_trials",
            flush=True,
        )
    for number in loop.stale_trials(study):
        print(
            f"trial {number} was left running by a sweep process that stopped sending "
            "heartbeats: recorded as failed, it does not count toward n_trials",
            flush=True,
        )


def _wait_for_other_workers(study: Any) -> None:
    """Trials other processes are still running (several workers on one study): wait
    for them, so that this worker's summary shows the whole study. Trials whose worker
    died end through the local owner check or the database heartbeat; with neither
    (a journal file shared with another machine) the summary shows them RUNNING."""
    from optuna.trial import TrialState

    told = False
    while True:
        _recover(study)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running or not all(loop.can_end(study, t) for t in running):
            return
        if not told:
            numbers = ", ".join(str(t.number) for t in running)
            print(f"waiting for trial(s) {numbers} of other workers to end", flush=True)
            told = True
        time.sleep(POLL_S)


def _stop_sweep(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (a scheduler's stop, ``kill``) stops a sweep like Ctrl-C. During a trial
    the run's own handler stops it at the next batch with its checkpoint saved; the loop
    then stops the sweep (``loop.record``)."""
    from dltrain.checkpointing.signals import training_in_progress

    if not training_in_progress():
        raise KeyboardInterrupt


def split_arguments(
    sweeper: Any, arguments: list[str], params: dict[str, Any]
) -> tuple[list[str], list[Dimension]]:
    """Command-line overrides: sweeps (``x=interval(0,1)``) join the search space; the
    others are fixed for every trial and take the key out of the space."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    fixed: list[str] = []
    space = {d.key: d for d in parse_space(params)}
    for override in parser.parse_overrides(arguments):
        key = override.get_key_element()
        if override.is_sweep_override():
            space[key] = from_override(override)
        else:
            space.pop(key, None)
            fixed.append(override.input_line)
    return fixed, list(space.values())


def _n_trials(settings: dict[str, Any], dims: list[Dimension]) -> int:
    n = int(settings["n_trials"])
    name = settings.get("sampler")
    name = name.get("name") if isinstance(name, dict) else name
    if name == "grid":  # a grid has a size; asking beyond it repeats points
        n = min(n, math.prod(len(d.grid()) for d in dims))
    if n < 1:
        raise ConfigError(f"n_trials is {n}", "set hydra.sweeper.n_trials to 1 or more")
    return n


def _rate(value: Any) -> float:
    rate = 1.0 if value is None else float(value)
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(
            f"hydra.sweeper.max_failure_rate is {rate}",
            "give a share between 0.0 (stop at the first failure) and 1.0 (never stop)",
        )
    return rate


def _example(dim: Dimension) -> str:
    from dltrain.sweep.space import to_overrides

    return to_overrides({dim.key: dim.example()})[0]


def _plain(value: Any) -> Any:
    if isinstance(value, DictConfig) or OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value
