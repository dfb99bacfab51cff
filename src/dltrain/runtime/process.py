"""Process-wide settings of a run: GPUs hidden on CPU runs, threads, malloc, warnings,
rank. Kept apart from the recipe so ``train.py`` reads as what is trained, not how the
process is tuned."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from omegaconf import DictConfig

from dltrain.runtime.allocator import tune_malloc


@contextmanager
def gpus_hidden_on_cpu(cfg: DictConfig) -> Iterator[None]:
    """A CPU run hides the GPUs it does not use, for its duration. Importing Lightning
    sets PYTORCH_NVML_BASED_CUDA_CHECK=1, after which every torch.cuda.is_available()
    opens NVML (~30 us on a CUDA build), and torch's Adam.step asks once a step; with
    no visible devices the check returns at once."""
    if cfg.trainer.get("accelerator") != "cpu":
        yield
        return
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def process_settings(cfg: DictConfig) -> None:
    """Threads and malloc thresholds (allocator.py, CPU runs) for this process."""
    import torch

    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    # Measured on CPU runs only, where a step's activations come from malloc; a GPU
    # run's come from the CUDA caching allocator, and a kept 1 GiB heap per process
    # would only cost host memory there.
    if cfg.get("tune_malloc", True) and cfg.trainer.get("accelerator") == "cpu":
        tune_malloc()


def quiet_known_warnings() -> None:
    """Silence warnings that do not apply to this runner's setup."""
    import logging
    import warnings

    # Lightning adds its own console handler; Hydra's handlers (log file + terminal)
    # already receive its records.
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lightning_log = logging.getLogger(name)
        for handler in list(lightning_log.handlers):
            lightning_log.removeHandler(handler)
        lightning_log.propagate = True

    # We log per epoch on purpose, so small epochs are fine.
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    # A resumed run writes into its existing checkpoint folder on purpose.
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
    # Our batch loader is not a DataLoader: worker advice does not apply.
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # A run without a validation split has an empty val loader on purpose.
    warnings.filterwarnings("ignore", message=".*Total length of `list` across ranks is zero.*")
    # Epoch metrics are torchmetrics objects or sums already reduced over the ranks.
    warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed.*")
    # Frozen backbones (model.freeze_backbone) stay in eval mode on purpose.
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode at the start.*")
    # Raised inside Lightning itself on newer torch; nothing for users to do.
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")


def is_rank_zero() -> bool:
    """Whether this process will be Lightning's global rank 0; known before a Trainer
    exists (the config tree, ``results.json`` of a run that fails early).

    Lightning's own detection, in its order (``_choose_and_init_cluster_environment``):
    torchrun/torchelastic, SLURM (``srun``), LSF, MPI (with ``mpi4py``); otherwise the
    variables Lightning's own launcher sets in the processes it starts (``LOCAL_RANK``
    and ``NODE_RANK``: global rank 0 is local rank 0 of node 0), then ``rank_zero_only``'s
    fallbacks (``RANK``, ``SLURM_PROCID``).
    """
    from lightning.fabric.plugins.environments import (
        LightningEnvironment,
        LSFEnvironment,
        MPIEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
    )
    from lightning.fabric.utilities.rank_zero import _get_rank

    for env_type in (TorchElasticEnvironment, SLURMEnvironment, LSFEnvironment, MPIEnvironment):
        if env_type.detect():
            try:
                return env_type().global_rank() == 0
            except Exception:  # noqa: BLE001 - a half-set environment: Lightning says why later
                break
    if "LOCAL_RANK" in os.environ and "RANK" not in os.environ:
        return int(os.environ["LOCAL_RANK"]) == 0 and LightningEnvironment().node_rank() == 0
    return (_get_rank() or 0) == 0
