"""Checks on the composed config that run before any data is loaded or file written."""

from __future__ import annotations

from omegaconf import DictConfig

from dltrain.errors import ConfigError
from dltrain.models.inputs import check_model_takes_data

GPU_ACCELERATORS = ("gpu", "cuda")


def is_multirun() -> bool:
    """True inside a ``-m`` sweep job (False when Hydra is not running, e.g. in tests)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def validate(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` for settings that cannot work on this machine or together."""
    check_hardware(cfg)
    check_model_takes_data(cfg)


def check_hardware(cfg: DictConfig) -> None:
    """GPU profiles need CUDA; say so before anything starts."""
    import torch

    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    strategy = cfg.trainer.get("strategy")
    strategy_name = strategy if isinstance(strategy, str) else str(strategy.get("_target_", ""))
    needs_gpu = accelerator in GPU_ACCELERATORS or "FSDP" in strategy_name
    if needs_gpu and not torch.cuda.is_available():
        raise ConfigError(
            f"this trainer profile needs a CUDA GPU (trainer.accelerator={accelerator}), "
            "but torch sees none",
            "use trainer=cpu (or trainer=ddp_cpu for several processes), "
            "or run on a machine with an NVIDIA GPU and a CUDA build of torch",
        )
