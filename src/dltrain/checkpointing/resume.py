"""Resuming runs: which checkpoint to continue from, and the state Lightning leaves out.

``resume=auto`` (the default) continues from ``<run dir>/checkpoints/last.ckpt`` when
the run directory already holds one (or from a newer ``hpc_ckpt_N.ckpt`` that
Lightning's SLURM requeue wrote), and starts fresh otherwise; ``ckpt_path=...`` picks
a file. Lightning restores weights, optimizer, scheduler, loop counters, callback
state and the batch loader's position; ``RunState`` adds the global RNG streams (every
rank's) and the metrics of a run that had already finished training.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from dltrain.errors import ConfigError

RESUME_MODES = ("auto", "never")
LAST = Path("checkpoints") / "last.ckpt"


def checkpoint_to_resume(cfg: DictConfig) -> str | None:
    """The checkpoint ``trainer.fit`` continues from, or ``None`` to start fresh."""
    explicit = cfg.get("ckpt_path")
    if explicit:
        return str(explicit)
    mode = str(cfg.get("resume", "auto"))
    if mode not in RESUME_MODES:  # also checked from run_options; kept for in-process callers
        raise ConfigError(f"resume={mode} is not known", "use resume=auto or resume=never")
    if mode == "never":
        return None
    candidates = [p for p in _candidates(Path(cfg.paths.output_dir)) if p.is_file()]
    if not candidates:
        return None
    return str(max(candidates, key=lambda p: p.stat().st_mtime_ns))


#: Config groups a checkpoint must share with the run that continues from it.
SAME_RUN_GROUPS = ("model", "data")


def check_same_run(cfg: DictConfig) -> None:
    """``resume=auto`` into a run directory whose checkpoint belongs to another model or
    data: stop before anything loads, naming the keys that differ. Without this check
    Lightning would fail half-way, on the state dict's shapes (or, worse, continue)."""
    if cfg.get("ckpt_path") or str(cfg.get("resume", "auto")) != "auto":
        return
    path = checkpoint_to_resume(cfg)
    stored = _stored_config(Path(path)) if path else None
    if not isinstance(stored, dict):
        return
    new = OmegaConf.to_container(cfg, resolve=False)
    differ = [
        key
        for group in SAME_RUN_GROUPS
        for key in _differences(stored.get(group), new.get(group), group)
    ]
    if differ:
        shown = ", ".join(differ[:6]) + (f" and {len(differ) - 6} more" if len(differ) > 6 else "")
        raise ConfigError(
            f"{path} belongs to a run with another model or data (differing keys: {shown})",
            "pass resume=never to start afresh in that directory, "
            "or give this run a new hydra.run.dir",
        )


def _stored_config(path: Path) -> dict[str, Any] | None:
    """The run config a Classifier checkpoint carries, read lazily (mmap): the weights
    stay on disk. ``None`` when the file has none or cannot be read (resuming reports
    a damaged file itself)."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - corrupt files are reported when resuming
        return None
    return ckpt.get("dltrain_config") if isinstance(ckpt, dict) else None


def _differences(old: Any, new: Any, prefix: str) -> list[str]:
    """Dotted keys whose values differ between two plain config trees."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            key
            for k in dict.fromkeys([*old, *new])
            for key in _differences(old.get(k), new.get(k), f"{prefix}.{k}")
        ]
    return [] if old == new else [prefix]


def _candidates(run_dir: Path) -> list[Path]:
    hpc = [p for p in run_dir.glob("hpc_ckpt_*.ckpt") if re.fullmatch(r"hpc_ckpt_\d+", p.stem)]
    return [run_dir / LAST, *hpc]


def resume_command(run_dir: Path) -> str:
    """The command line that continues this run: same overrides, same run directory."""
    from hydra.core.hydra_config import HydraConfig

    args: list[str] = []
    if HydraConfig.initialized():
        args = [o for o in HydraConfig.get().overrides.task if not o.startswith("ckpt_path=")]
    args.append(f"hydra.run.dir={run_dir.resolve()}")
    return " ".join(["dl-train", *(shlex.quote(a) for a in args)])


class RunState(Callback):
    """Checkpoint the global RNG streams (torch, CUDA, numpy, Python) and the run's
    latest metrics, so a resumed run draws the same random numbers (dropout,
    augmentation) as an uninterrupted one and reports the same metrics even when the
    checkpoint was written after the last epoch.

    Under DDP each rank draws its own numbers: every rank is seeded alike (the model
    starts the same everywhere), so at the start of training each rank's streams are
    reseeded from ``(seed, rank)``; otherwise every rank would apply the same crops,
    flips and dropout masks to its own samples. Every rank's streams are then gathered
    into each checkpoint (``rng_by_rank``; ``rng`` is rank 0's) and each rank restores
    its own on resume. A checkpoint with fewer ranks' streams (an older one, or another
    world size) gives the other ranks fresh ``(seed, rank)`` streams."""

    def __init__(self) -> None:
        self._trainer: pl.Trainer | None = None
        self._restored_metrics: dict[str, float] = {}
        self._restored_rng = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After the model is built and wrapped, before the first batch; a resumed run's
        # streams came from its checkpoint instead.
        if trainer.world_size > 1 and not self._restored_rng:
            _seed_rank(trainer.global_rank)

    def state_dict(self) -> dict[str, Any]:
        metrics: dict[str, float] = {}
        if self._trainer is not None:
            for key, value in self._trainer.callback_metrics.items():
                if getattr(value, "numel", lambda: 1)() == 1:
                    metrics[key] = float(value)
        states = _gather_from_ranks(_rng_state())  # every rank saves together
        return {"rng": states[0], "rng_by_rank": states, "metrics": metrics}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        rank = self._trainer.global_rank if self._trainer is not None else 0
        states = state.get("rng_by_rank") or [state["rng"]]
        if rank < len(states):
            _set_rng_state(states[rank])
        else:
            _seed_rank(rank)
        self._restored_rng = True
        self._restored_metrics = dict(state.get("metrics", {}))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Resumed from a checkpoint of a finished fit: nothing was logged this time.
        import torch

        metrics = trainer.callback_metrics
        for key, value in self._restored_metrics.items():
            metrics.setdefault(key, torch.tensor(value))


def _seed_rank(rank: int) -> None:
    """Reseed this process's streams (Python, numpy, torch with CUDA) from the run's
    seed (``seed_everything``'s, which ``torch.initial_seed`` reports) and ``rank``."""
    import random

    import numpy as np
    import torch

    seed = int(np.random.SeedSequence([torch.initial_seed(), rank]).generate_state(1)[0])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _gather_from_ranks(value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (``[value]`` in one process). Plain
    values and CPU tensors only: they travel pickled."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def _rng_state() -> dict[str, Any]:
    """Lightning's RNG snapshot with numpy's array as a tensor: loadable weights_only."""
    import torch
    from lightning.fabric.utilities.seed import _collect_rng_states

    state = _collect_rng_states()
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    state["numpy"] = [kind, torch.from_numpy(keys.astype("int64")), pos, has_gauss, gauss]
    version, inner, gauss_py = state["python"]
    state["python"] = [version, list(inner), gauss_py]
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch
    from lightning.fabric.utilities.seed import _set_rng_states

    state = dict(state)
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    state["numpy"] = (kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss)
    if not torch.cuda.is_available():  # resumed on a machine without the GPU
        state.pop("torch.cuda", None)
    elif len(state.get("torch.cuda", [])) != torch.cuda.device_count():
        state.pop("torch.cuda", None)
    _set_rng_states(state)
