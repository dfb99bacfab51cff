"""``dl-train -m hparams_search=...``: from the sweeper's settings to a finished study."""

from __future__ import annotations

import math
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dltrain.errors import ConfigError
from dltrain.sweep import loop, report
from dltrain.sweep import study as st
from dltrain.sweep.space import Dimension, from_override, parse_space


def run_sweep(sweeper: Any, arguments: list[str]) -> dict[str, Any]:
    """Run the study to ``n_trials`` and report; Ctrl-C stops after recording which
    trials were cut short, and the same command continues."""
    cfg: DictConfig = sweeper.config
    settings = {k: _plain(v) for k, v in sweeper.settings.items()}
    sweep_dir = Path(str(cfg.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, sweep_dir / "multirun.yaml")

    fixed, dims = split_arguments(sweeper, arguments, settings.get("params") or {})
    sweeper.validate_batch_is_legal([[*fixed, *(_example(d) for d in dims)]])
    url = st.storage_url(settings.get("storage"), sweep_dir)
    study = st.open_study(
        str(settings["study_name"]),
        url,
        str(settings["direction"]),
        load_if_exists=bool(settings["load_if_exists"]),
    )
    for number in loop.recover_orphans(study):
        print(
            f"trial {number} was left running by a sweep process that no longer exists: "
            "recorded as interrupted, it does not count toward n_trials",
            flush=True,
        )
    study.sampler = st.make_sampler(st.continued_seed(settings.get("sampler"), study), dims)
    study.set_user_attr(st.PRUNER_ATTR, st.pruner_spec(settings.get("pruner")))
    sweep = loop.Sweep(
        study=study,
        storage_url=url,
        dims=dims,
        fixed=fixed,
        n_trials=_n_trials(settings, dims),
        n_jobs=max(1, int(settings["n_jobs"])),
        launcher=sweeper.launcher,
    )
    print(
        f"study '{study.study_name}' in {url}: {loop.counted(study)} of {sweep.n_trials} "
        f"trials done, {len(dims)} searched parameters",
        flush=True,
    )
    previous = signal.signal(signal.SIGTERM, _stop_sweep)
    try:
        loop.run_trials(sweep)
    except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C into SystemExit(1)
        loop.interrupt(study, sweep.running)
        report.write_report(study, sweep_dir, fixed, str(cfg.get("optimized_metric")))
        raise KeyboardInterrupt from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    summary = report.write_report(study, sweep_dir, fixed, str(cfg.get("optimized_metric")))
    report.print_leaderboard(summary, sweep_dir)
    return summary


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


def _example(dim: Dimension) -> str:
    from dltrain.sweep.space import to_overrides

    return to_overrides({dim.key: dim.example()})[0]


def _plain(value: Any) -> Any:
    if isinstance(value, DictConfig) or OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value
