"""``dl-train tune=lr|batch_size|lr,batch_size``: Lightning's finders on the composed run.

Each finder runs on a throwaway build of the run (its own data module, module and
Trainer, no loggers or checkpoints), so what training does afterwards is exactly what
``dl-train <the printed overrides>`` does: the suggestions are written into the config
(``data.batch_size``, ``optimizer.lr``), printed as override lines, and the recipe
builds the run again from them. The batch size is found first, since the learning
rate that suits a batch depends on its size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from dltrain.commands import build
from dltrain.config.global_batch import world_size
from dltrain.errors import ConfigError, RunError
from dltrain.trees.boosters import is_booster

FINDERS = ("batch_size", "lr")  # the order they run in


def requested(cfg: DictConfig) -> list[str]:
    """The finders ``tune=`` names, in the order they run."""
    node = cfg.get("tune") or {}
    return [name for name in FINDERS if name in node]


def check(cfg: DictConfig) -> None:
    """Refuse, in one line, what the finders cannot do (before any data is read)."""
    names = requested(cfg)
    if not names:
        return
    shown = "tune=" + ",".join(cfg.tune.keys())  # as the user wrote them
    if is_booster(cfg.model.get("_target_")):
        raise ConfigError(
            f"{shown} runs Lightning's finders, and model={_choice(cfg, 'model')} is a "
            "boosted tree that Lightning does not train",
            "tune a net (e.g. model=mlp), or sweep the trees' settings with -m",
        )
    processes = world_size(cfg)
    if processes > 1:
        raise ConfigError(
            f"{shown} runs in one process, and this hardware profile starts {processes}",
            "run the finder with trainer=cpu or trainer=gpu (one device), then train on "
            "the profile with the printed overrides",
        )
    if "batch_size" in names and cfg.data.get("global_batch_size"):
        raise ConfigError(
            "tune=batch_size finds data.batch_size, and data.global_batch_size is set",
            "leave data.global_batch_size=null while tuning",
        )
    if "lr" in names and "lr" not in (cfg.get("optimizer") or {}):
        raise ConfigError(
            "tune=lr sets optimizer.lr, and this optimizer config has no lr",
            "use an optimizer config with an lr key (e.g. optimizer=adam)",
        )


def tune(cfg: DictConfig) -> dict[str, Any]:
    """Run the finders ``cfg.tune`` names; write their suggestions into ``cfg`` and
    return them as ``{override key: value}`` (printed one override per line)."""
    import lightning.pytorch as pl

    check(cfg)
    found: dict[str, Any] = {}
    run_dir = Path(cfg.paths.output_dir)
    for name in requested(cfg):
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        dm = build.datamodule(cfg)
        module = build.module(cfg, dm)
        # Whole epochs: a finder's steps run on, epoch after epoch, until it has its count
        # (a run's limit_train_batches would add an epoch's overhead to every step).
        trainer = build.trainer(cfg, [], [], default_root_dir=str(run_dir), max_epochs=-1,
                                limit_train_batches=1.0)  # fmt: skip
        if name == "batch_size":
            key, value = "data.batch_size", _batch_size(cfg.tune.batch_size, trainer, module, dm)
        else:
            key, value = "optimizer.lr", _lr(cfg.tune.lr, trainer, module, dm, run_dir)
        with open_dict(cfg):
            _set(cfg, key, value)
        found[key] = value
    return found


def _batch_size(node: DictConfig, trainer: Any, module: Any, dm: Any) -> int:
    from lightning.pytorch.tuner import Tuner

    with _memory_budget(trainer, float(node.memory_fraction)):
        size = Tuner(trainer).scale_batch_size(
            module,
            datamodule=dm,
            mode="binsearch",  # doubling, then a binary search below the first failure
            steps_per_trial=int(node.steps_per_trial),
            init_val=int(dm.batch_size),
            max_trials=int(node.max_trials),
            margin=float(node.margin),
            max_val=int(node.max_val),
        )
    if not size:
        raise RunError("the batch-size finder found no batch size that fits",
                       "lower data.batch_size and try again")  # fmt: skip
    # Our batch loaders have no ``dataset`` for Lightning to stop at the split's size:
    # a larger batch is the whole split, the same memory, so the split's size is the cap.
    train = getattr(getattr(dm, "train_set", None), "y", None)
    return int(min(size, len(train))) if train is not None else int(size)


@contextlib.contextmanager
def _memory_budget(trainer: Any, fraction: float) -> Iterator[None]:
    """On a GPU, allocations beyond ``fraction`` of its memory raise the out-of-memory
    error the finder backs off from (torch's own per-process cap); a CPU has none."""
    import torch

    device = trainer.strategy.root_device
    if device.type != "cuda":
        yield
        return
    torch.cuda.set_per_process_memory_fraction(fraction, device)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        torch.cuda.empty_cache()


def _lr(node: DictConfig, trainer: Any, module: Any, dm: Any, run_dir: Path) -> float:
    from lightning.pytorch.tuner import Tuner

    threshold = node.get("early_stop_threshold")
    finder = Tuner(trainer).lr_find(
        module,
        datamodule=dm,
        min_lr=float(node.min_lr),
        max_lr=float(node.max_lr),
        num_training=int(node.num_training),
        mode=str(node.mode),
        early_stop_threshold=None if threshold is None else float(threshold),
        update_attr=False,  # the suggestion goes into cfg.optimizer.lr instead
    )
    lr = finder.suggestion() if finder is not None else None
    if lr is None:
        raise RunError(
            f"the learning-rate finder saw too few steps to suggest a rate "
            f"({len(finder.results.get('lr', [])) if finder else 0} of {node.num_training})",
            "raise tune.lr.num_training, or lower tune.lr.early_stop_threshold's strictness "
            "(e.g. tune.lr.early_stop_threshold=null)",
        )
    _save_plot(finder, run_dir / "plots" / "lr_find.png")
    return float(f"{lr:.3g}")


def _save_plot(finder: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig = finder.plot(suggest=True, show=False)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _set(cfg: DictConfig, key: str, value: Any) -> None:
    group, _, leaf = key.partition(".")
    cfg[group][leaf] = value


def _choice(cfg: DictConfig, group: str) -> str:
    from hydra.core.hydra_config import HydraConfig

    try:
        return str(HydraConfig.get().runtime.choices.get(group))
    except ValueError:  # composed outside a Hydra job (tests, dl-smoke)
        return str(cfg[group].get("_target_", group)).rsplit(".", 1)[-1].lower()
