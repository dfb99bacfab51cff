"""The sweeper's settings (``hydra.sweeper.*``), registered as ``hydra/sweeper=dltrain_optuna``.

The keys of hydra-optuna-sweeper mean the same here (``study_name``/``storage`` null,
``direction`` as a list, ``max_failure_rate``, ``custom_search_space``, ``search_space``,
``params``, a ``sampler`` given by ``_target_``), so its searches run after switching
the sweeper (docs/how-to/sweeps.md, "Coming from hydra-optuna-sweeper").

No ``from __future__ import annotations`` here: OmegaConf reads these types at runtime,
and Hydra's plugin scan runs this module before it is in ``sys.modules``.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional  # noqa: UP035 - runtime types for OmegaConf

from hydra.core.config_store import ConfigStore


@dataclass
class DltrainOptunaSweeperConf:
    _target_: str = "hydra_plugins.dltrain_optuna.optuna_sweeper.DltrainOptunaSweeper"
    # Settings reach the sweeper as written: a sampler or pruner given by _target_ is
    # built by dltrain.sweep.study (which moves a continued study's seed on), not by
    # Hydra while it instantiates the sweeper.
    _recursive_: bool = False
    # The study's name in its storage; the same name continues the same study.
    # null: the hparams_search option's name (else the task's), in the sweep directory too.
    study_name: Optional[str] = None  # noqa: UP045
    # maximize | minimize the value the task returns (cfg.optimized_metric), or a list
    # (one per name when optimized_metric is a list: a multi-objective study).
    # null: from each metric's name (dltrain.config.task.metric_mode): minimize a loss
    # or error (loss, rmse, mae), maximize a score (acc, auroc, f1_macro, r2).
    direction: Any = None
    # Total trials of the study, counted across reruns and concurrent processes.
    n_trials: int = 20
    # Trials launched at once (in parallel with a parallel launcher, e.g. joblib).
    n_jobs: int = 1
    # null: an Optuna journal file in the sweep directory. A path: a journal file there.
    # A URL (sqlite:///x.db, postgresql://...): an RDB storage.
    storage: Optional[str] = None  # noqa: UP045
    # Continue the study when it already exists in the storage.
    load_if_exists: bool = True
    # Database storage: seconds between a worker's heartbeats, and without one for
    # grace_period (null: twice the interval) its running trials are failed by the
    # other workers. null: no heartbeat.
    heartbeat_interval: Optional[int] = 60  # noqa: UP045
    grace_period: Optional[int] = None  # noqa: UP045
    # Stop when more than this share of the sweep's trials failed (0.0: at the first
    # failure, hydra-optuna-sweeper's default).
    max_failure_rate: float = 1.0
    # Stop at an error shown to be one every trial would share (dltrain.sweep.stopping:
    # the config fails to build without sampled values too, or the first 3 failures with
    # distinct values failed alike, before any trial completed). false: never.
    stop_on_shared_error: bool = True
    # A name (tpe | random | grid | cmaes | qmc), {name: .., <its arguments>}, or
    # {_target_: optuna.samplers.X, ...}. null: {name: tpe, seed: 42}.
    sampler: Any = None
    # A name (median | hyperband | successive_halving | none), {name: .., <arguments>}
    # or {_target_: optuna.pruners.X, ...}. null: median.
    pruner: Any = None
    # Search space: config key -> {type: float|int|categorical, ...} or a sweep string.
    params: Optional[Dict[str, Any]] = None  # noqa: UP006, UP045
    # hydra-optuna-sweeper's older name for params (merged into it).
    search_space: Optional[Dict[str, Any]] = None  # noqa: UP006, UP045
    # module.function(cfg, trial) that suggests more (e.g. conditional) parameters.
    custom_search_space: Optional[str] = None  # noqa: UP045


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="dltrain_optuna",
    node=DltrainOptunaSweeperConf,
    provider="dltrain",
)
