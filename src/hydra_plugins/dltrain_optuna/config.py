"""The sweeper's settings (``hydra.sweeper.*``), registered as ``hydra/sweeper=dltrain_optuna``.

No ``from __future__ import annotations`` here: OmegaConf reads these types at runtime,
and Hydra's plugin scan runs this module before it is in ``sys.modules``.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional  # noqa: UP035 - runtime types for OmegaConf

from hydra.core.config_store import ConfigStore


@dataclass
class DltrainOptunaSweeperConf:
    _target_: str = "hydra_plugins.dltrain_optuna.optuna_sweeper.DltrainOptunaSweeper"
    # The study's name in its storage; the same name continues the same study.
    study_name: str = "${task_name}"
    # maximize | minimize the value the task returns (cfg.optimized_metric).
    direction: str = "maximize"
    # Total trials of the study, counted across reruns and concurrent processes.
    n_trials: int = 20
    # Trials launched at once (in parallel with a parallel launcher, e.g. joblib).
    n_jobs: int = 1
    # null: an Optuna journal file in the sweep directory. A path: a journal file there.
    # A URL (sqlite:///x.db, postgresql://...): an RDB storage.
    storage: Optional[str] = None  # noqa: UP045
    # Continue the study when it already exists in the storage.
    load_if_exists: bool = True
    # A name (tpe | random | grid | cmaes | qmc) or {name: .., <its arguments>}.
    sampler: Any = field(default_factory=lambda: {"name": "tpe", "seed": 42})
    # A name (median | hyperband | successive_halving | none) or {name: .., <arguments>}.
    pruner: Any = field(default_factory=lambda: {"name": "median"})
    # Search space: config key -> {type: float|int|categorical, ...} or a sweep string.
    params: Optional[Dict[str, Any]] = None  # noqa: UP006, UP045


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="dltrain_optuna",
    node=DltrainOptunaSweeperConf,
    provider="dltrain",
)
