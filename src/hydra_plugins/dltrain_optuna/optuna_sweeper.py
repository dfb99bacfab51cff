"""The Hydra ``Sweeper``: a thin adapter; ``dltrain.sweep.run`` does the work."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class DltrainOptunaSweeper(Sweeper):
    """Run ``n_trials`` of an Optuna study as Hydra jobs; see ``dltrain.sweep.loop``."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from dltrain.sweep.run import run_sweep

        return run_sweep(self, arguments, build=build_objects)


def build_objects(cfg: DictConfig, deep: bool) -> None:
    """What a run does before it trains, with ``dl-train``'s own checks and builders:
    the config's checks, the data module (a table is read and ``cfg`` learns its task),
    then the net and the LightningModule, or the boosted-tree model; ``deep``: the data
    is read too. The sweep asks for it once before its first trial and to judge a
    failure (``dltrain.sweep.stopping``); it lives here, at the top, because nothing in
    ``dltrain`` below the commands may import them."""
    from hydra.utils import instantiate

    from dltrain.commands import build
    from dltrain.config.checks import validate
    from dltrain.trees.boosters import is_booster

    validate(cfg)
    dm = build.datamodule(cfg)
    if is_booster(cfg.model.get("_target_")):
        instantiate(cfg.model)
    else:
        build.module(cfg, dm)
    if deep:
        dm.prepare_data()
        dm.setup("fit")
