"""Which GPU a job of a parallel multirun takes, and its share of that GPU's data budget.

Why: with the joblib launcher every job is its own process, and a single-GPU profile
(``trainer=gpu``: ``devices: 1``) puts each one on GPU 0; each then budgets its dataset
against the whole device (``data.device_budget``, ``data/loading/placement.py``), so four
trials at 0.25 each claim the whole GPU between them. Here job ``k``
(``hydra.job.num``: the Optuna sweeper launches a batch as the trial numbers
``first .. first + n - 1``, Hydra's basic sweeper numbers its jobs in order) takes
device ``k mod count``, and its budget is divided by the number of jobs that can be on
that device at once.

How many can be at once: the jobs launched together (the sweeper's ``n_jobs``, or the
basic sweeper's ``max_batch_size``; unknown: every worker's) are consecutive numbers,
so at most ``ceil(batch / count)`` of them map to one device, and no more than the
launcher's workers run at a time. ``min(workers, ceil(batch / count))`` is therefore a
bound that holds for any order in which joblib starts them: where the batch is larger
than the workers, devices may be used unevenly, but no device is over-budgeted.

Only a job of a parallel launcher, on a profile with exactly one GPU per run
(``devices: 1`` on one node), is placed; ``trainer.devices=[i]`` (or ``"i,"``) is the
user's choice and stays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from dltrain.runtime.precision import GPU_ACCELERATORS


@dataclass(frozen=True)
class TrialDevice:
    """The device job ``job`` takes and how many jobs may share it at once."""

    job: int
    index: int
    count: int
    sharers: int

    def budget(self, budget: float) -> float:
        """This job's share of a per-device ``data.device_budget``."""
        return budget / self.sharers

    def describe(self, budget: float | None = None) -> str:
        """The one line a job prints about where it runs."""
        line = f"job {self.job}: cuda:{self.index} of {self.count} GPUs"
        if self.sharers > 1:
            line += f", shared by up to {self.sharers} parallel jobs"
            if budget is not None:
                line += f" (data.device_budget {budget:g} -> {self.budget(budget):g} each)"
        return line


def spread(job: int, workers: int, batch: int | None, count: int) -> TrialDevice:
    """Job ``job``'s device among ``count`` and its sharers, for ``workers`` running at
    once out of batches of ``batch`` consecutive job numbers (``None``: unknown)."""
    per_device = workers if batch is None else math.ceil(batch / count)
    return TrialDevice(job, job % count, count, max(1, min(workers, per_device)))


def cuda_device_count() -> int:
    """GPUs this process sees (``CUDA_VISIBLE_DEVICES`` applies); 0 without CUDA."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def one_gpu_per_run(trainer: DictConfig) -> bool:
    """A profile that runs on one GPU it does not name: ``devices: 1``, one node. A list
    or an index string (``[1]``, ``"1,"``) names the device: the user's choice."""
    if str(trainer.get("accelerator", "cpu")) not in GPU_ACCELERATORS:
        return False
    if int(trainer.get("num_nodes", 1) or 1) != 1:
        return False
    devices = trainer.get("devices", 1)
    return isinstance(devices, (int, str)) and str(devices).strip() == "1"


def parallel_job() -> tuple[int, int, int | None] | None:
    """``(job number, workers, batch)`` of a job a parallel launcher (joblib) runs in a
    multirun; ``None`` for a single run, another launcher or one worker."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    if not str(OmegaConf.select(hydra, "mode", default="")).endswith("MULTIRUN"):
        return None
    num = OmegaConf.select(hydra, "job.num", default=None)
    if num is None or "joblib" not in str(OmegaConf.select(hydra, "launcher._target_")):
        return None
    from joblib import effective_n_jobs

    workers = int(effective_n_jobs(OmegaConf.select(hydra, "launcher.n_jobs", default=-1)))
    batch = _select(hydra, "sweeper.n_jobs") or _select(hydra, "sweeper.max_batch_size")
    if workers <= 1 or batch == 1:
        return None
    return int(num), workers, batch


def choose(cfg: DictConfig) -> TrialDevice | None:
    """The device of this run when it is a parallel job on a one-GPU profile (and torch
    sees a GPU); ``None``: the profile's own ``devices`` stands."""
    if not one_gpu_per_run(cfg.trainer):
        return None
    job = parallel_job()
    if job is None:
        return None
    count = cuda_device_count()
    if count < 1:
        return None  # the hardware check says a GPU profile needs CUDA
    return spread(*job, count=count)


def _select(node: DictConfig, key: str) -> int | None:
    value = OmegaConf.select(node, key, default=None)
    return int(value) if value is not None else None
