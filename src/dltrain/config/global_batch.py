"""The global batch: the samples one optimizer step sees, over every process and
accumulation step (``processes x per-device batch x accumulation steps``).

``data.batch_size`` is per process, so the same recipe trains with 8 times its batch on
8 GPUs, at a learning rate tuned for one. ``data.global_batch_size`` fixes the global
batch instead: the per-device batch and ``trainer.accumulate_grad_batches`` are derived
from the world size (one line says how), and a global batch that does not divide evenly
is refused. A recipe states the global batch it was tuned for in
``data.tuned_global_batch``; a multi-process run that would train with another one
without ``global_batch_size`` gets one warning line.

The per-device batch and the accumulation are passed to the data module and the Trainer
when they are built (``commands/train.py``); the config keeps what the user wrote.

Precedence: with ``global_batch_size`` set, ``data.batch_size`` is the largest
per-device batch (what fits in one device's memory; every data config sets one, so
"both set" is the normal case, not a conflict): the smallest accumulation that keeps
the per-device batch within it is chosen. ``trainer.accumulate_grad_batches`` is then
derived, so setting it too is refused.

Both keys are read by the runner and never passed to the data module
(``config/targets.py`` ``DATA_RUNNER``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from annotated_types import Ge
from omegaconf import DictConfig, OmegaConf

from dltrain.config import signatures
from dltrain.errors import ConfigError
from dltrain.runtime.precision import GPU_ACCELERATORS

#: What both keys accept: a positive number of samples, or null (not set).
BATCH = Annotated[int, Ge(1)] | None


@dataclass(frozen=True)
class Split:
    """A global batch divided over processes and accumulation steps."""

    global_batch: int
    processes: int
    per_device: int
    accumulation: int

    def line(self) -> str:
        """``global batch 128 = 2 processes x 64 per device x 1 accumulation step``."""
        procs = "process" if self.processes == 1 else "processes"
        steps = "step" if self.accumulation == 1 else "steps"
        return (
            f"global batch {self.global_batch} = {self.processes} {procs} x "
            f"{self.per_device} per device x {self.accumulation} accumulation {steps}"
        )



def devices_per_node(cfg: DictConfig) -> int | None:
    """Processes one run starts on each node; ``None``: one per visible GPU (-1, "auto")."""
    devices = cfg.trainer.get("devices", 1)
    if isinstance(devices, int) and devices >= 1:
        return devices
    if OmegaConf.is_list(devices) or isinstance(devices, (list, tuple)):
        return len(devices)
    if str(devices).strip().isdigit():
        return int(str(devices))
    return None

def split(global_batch: int, processes: int, cap: int | None = None) -> Split:
    """The smallest accumulation that divides ``global_batch`` evenly over ``processes``
    with at most ``cap`` samples per device; ``ConfigError`` when it cannot divide."""
    if global_batch % processes:
        lower = global_batch // processes * processes
        near = " or ".join(str(n) for n in (lower, lower + processes) if n > 0)
        raise ConfigError(
            f"data.global_batch_size={global_batch} does not divide evenly over "
            f"{processes} processes ({global_batch / processes:g} samples per process)",
            f"use a multiple of {processes}, e.g. data.global_batch_size={near}, "
            "or change trainer.devices/trainer.num_nodes",
        )
    per_process = global_batch // processes
    steps = next(
        k for k in range(1, per_process + 1)
        if per_process % k == 0 and (cap is None or per_process // k <= cap)
    )  # fmt: skip
    return Split(global_batch, processes, per_process // steps, steps)


def world_size(cfg: DictConfig) -> int:
    """The processes of this run (devices x nodes, config/checks.py), with ``-1`` and
    ``"auto"`` counted the way Lightning counts them on this machine."""
    trainer = cfg.trainer
    nodes = int(trainer.get("num_nodes", 1) or 1)
    local = devices_per_node(cfg)
    if local is not None:
        return local * nodes
    devices = trainer.get("devices")
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator

    gpu = str(trainer.get("accelerator", "cpu")) in GPU_ACCELERATORS
    accelerator = CUDAAccelerator if gpu else CPUAccelerator
    try:
        if str(devices) == "auto":
            local = accelerator.auto_device_count()
        else:
            parsed = accelerator.parse_devices(devices)
            local = len(parsed) if isinstance(parsed, list) else int(parsed or 0)
    except MisconfigurationException:
        local = 0
    if local < 1:
        raise ConfigError(
            f"cannot tell how many processes trainer.devices={devices} starts here, so "
            "data.global_batch_size cannot be divided over them",
            "set trainer.devices to a number of devices",
        )
    return local * nodes


def plan(cfg: DictConfig) -> Split | None:
    """How ``data.global_batch_size`` divides on this run's processes (None: not set);
    ``ConfigError`` for a value, a division or a combination that cannot be right."""
    data = cfg.get("data")
    if data is None:
        return None
    wanted = _batch(data, "global_batch_size")
    _batch(data, "tuned_global_batch")
    if wanted is None:
        return None
    accumulate = cfg.trainer.get("accumulate_grad_batches", 1)
    if accumulate != 1:
        raise ConfigError(
            f"data.global_batch_size={wanted} and trainer.accumulate_grad_batches="
            f"{accumulate} are both set: the global batch decides the accumulation",
            "drop trainer.accumulate_grad_batches (data.batch_size caps the per-device "
            "batch), or drop data.global_batch_size",
        )
    _check_takes_batch_size(data)
    cap = data.get("batch_size")
    return split(wanted, world_size(cfg), int(cap) if cap is not None else None)


def _batch(data: DictConfig, key: str) -> int | None:
    """``data.<key>`` checked like a signature's ``Annotated[int, Ge(1)] | None``."""
    value = data.get(key)
    signatures.check_value(f"data.{key}", value, signatures.Param(key, BATCH, None))
    return value


def _check_takes_batch_size(data: DictConfig) -> None:
    """A data module without a ``batch_size`` argument cannot get a derived one."""
    sig = signatures.signature_of(str(data.get("_target_", "")))
    if sig is not None and "batch_size" not in sig.params and not sig.open:
        raise ConfigError(
            f"data.global_batch_size needs a data module that takes batch_size, but "
            f"{data._target_} does not",
            "drop data.global_batch_size and set the batch in the data module's own keys",
        )


def settle(cfg: DictConfig) -> tuple[Split | None, str | None]:
    """The plan (the builders pass its per-device batch and accumulation to the data
    module and the Trainer; ``cfg`` keeps what the user wrote, so a resume compares the
    same config) and the line to show: how the global batch divides, or the warning of
    a multi-process run that changes a recipe's tuned global batch."""
    planned = plan(cfg)
    if planned is None:
        return None, tuned_batch_warning(cfg)
    return planned, planned.line()


def tuned_batch_warning(cfg: DictConfig) -> str | None:
    """``warning: ...`` when several processes train a recipe with a global batch other
    than ``data.tuned_global_batch`` and ``data.global_batch_size`` is not set (a
    deliberate ``data.batch_size`` on one process is the user's choice: no warning)."""
    data = cfg.get("data")
    if data is None or data.get("global_batch_size") is not None:
        return None
    tuned, per_device = data.get("tuned_global_batch"), data.get("batch_size")
    if tuned is None or per_device is None:
        return None
    accumulate = cfg.trainer.get("accumulate_grad_batches", 1)
    if not isinstance(accumulate, int):
        return None  # a schedule of accumulations: no single global batch to compare
    processes = world_size(cfg)
    actual = processes * int(per_device) * accumulate
    if processes == 1 or actual == tuned:
        return None
    how = Split(actual, processes, int(per_device), accumulate).line()
    return (
        f"warning: {_recipe(cfg)} was tuned for a global batch of {tuned}, but "
        f"{_profile(cfg)} trains with {how.removeprefix('global batch ')} — set "
        f"data.global_batch_size={tuned} to keep it"
    )


def _recipe(cfg: DictConfig) -> str:
    choice = _choices(cfg).get("experiment")
    return f"experiment={choice}" if choice else "this config"


def _profile(cfg: DictConfig) -> str:
    choice = _choices(cfg).get("trainer")
    return f"trainer={choice}" if choice else f"trainer.devices={cfg.trainer.get('devices')}"


def _choices(cfg: DictConfig) -> dict[str, Any]:
    """The groups chosen in this run (Hydra's runtime choices; none outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return dict(HydraConfig.get().runtime.choices)
    chosen = OmegaConf.select(cfg, "hydra.runtime.choices")
    return dict(chosen) if chosen is not None else {}
