"""Checks on the composed config that run before any data is loaded or file written."""

from __future__ import annotations

import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dltrain.config import combinations, signatures, targets
from dltrain.config.global_batch import devices_per_node
from dltrain.config.model_data import check_model_takes_data
from dltrain.errors import ConfigError
from dltrain.module.metrics import check_metric_names
from dltrain.runtime import run_dirs
from dltrain.runtime.precision import GPU_ACCELERATORS

#: Groups whose classes import torch but not Lightning: checked first.
EARLY_GROUPS = ("model", "optimizer", "scheduler")


def is_multirun() -> bool:
    """True inside a ``-m`` sweep job (False when Hydra is not running, e.g. in tests)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def validate(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` for settings that cannot work on this machine or together."""
    targets.check_extras(cfg)  # a missing extra: say so before anything is imported
    # Keys, types and ranges of every _target_, from its class's signature. Reading a
    # signature imports the class's module (an import mistake is named, targets.locate):
    # the model (torch) goes first, then the model/data pair (a text model on tensor
    # data is that, not an unknown data.tokenizer key), then the data and the rest
    # (Lightning).
    signatures.check_declared(cfg)
    check_metric_names(_plain_metrics(cfg))
    if is_multirun():
        check_multirun_processes(cfg)
    check_hardware(cfg)
    signatures.check_targets(cfg, groups=EARLY_GROUPS)
    combinations.check_model_fits_data(cfg)
    check_model_takes_data(cfg)
    check_modality(cfg)
    signatures.check_targets(cfg, skip=EARLY_GROUPS)
    targets.check_importable(cfg)  # those without a readable signature too
    combinations.check(cfg)  # the cross-key rules


def _plain_metrics(cfg: DictConfig) -> dict | None:
    from omegaconf import OmegaConf

    node = cfg.get("metrics")
    if node is None:
        return None
    if not OmegaConf.is_dict(node):
        raise ConfigError(
            f"metrics={node} is not a node of stages",
            "use e.g. metrics.test=[auroc,f1_macro] metrics.val=[]",
        )
    return OmegaConf.to_container(node, resolve=True)


def validate_run(cfg: DictConfig) -> None:
    """``validate`` a training run; a rejected config leaves no run directory behind.

    Hydra creates the run directory (``.hydra/`` and the log file) before the task
    starts; when validation rejects the config, a directory holding nothing else is
    removed, so a typo does not litter ``outputs/``. In a sweep the trial's directory
    stays, with a ``results.json`` that says why it failed.
    """
    from dltrain.config.global_batch import plan

    try:
        validate(cfg)
        plan(cfg)  # data.global_batch_size divides over this run's processes
        check_checkpoint(cfg)
        from dltrain.checkpointing.resume import check_same_run

        check_same_run(cfg)  # resume=auto into another run's directory
    except ConfigError as ex:
        if is_multirun():  # a sweep keeps every trial's record, rejected ones too
            from dltrain.records.results import write_results

            write_results(Path(str(cfg.paths.output_dir)), "failed", reason=str(ex))
        else:
            discard_unused_run_dir(cfg)
        raise


def check_checkpoint(cfg: DictConfig) -> None:
    """``ckpt_path`` of a training run must exist (``dl-eval`` checks its own)."""
    if cfg.get("ckpt_path") and not Path(str(cfg.ckpt_path)).is_file():
        raise ConfigError(
            f"checkpoint {cfg.ckpt_path} does not exist",
            "pass ckpt_path=<run dir>/checkpoints/<file>.ckpt of a finished or interrupted run",
        )


def discard_unused_run_dir(cfg: DictConfig) -> None:
    try:
        run_dir = Path(str(cfg.paths.output_dir))
    except Exception:  # noqa: BLE001 - no Hydra run (e.g. in-process tests without a path)
        return
    if not run_dir.is_dir() or run_dirs.held_a_record(run_dir):
        return  # an existing run's directory (e.g. killed while loading data) stays
    leftovers = [p for p in run_dir.iterdir() if p.name != ".hydra" and p.suffix != ".log"]
    if not leftovers:
        shutil.rmtree(run_dir, ignore_errors=True)


def processes_per_run(cfg: DictConfig) -> int | None:
    """Processes one run starts (devices x nodes); ``None``: all visible GPUs."""
    local, nodes = devices_per_node(cfg), int(cfg.trainer.get("num_nodes", 1) or 1)
    if local is not None:
        return local * nodes
    return None if nodes == 1 else 2  # -1 / "auto": however many GPUs there are


def check_multirun_processes(cfg: DictConfig, launcher: str | None = None) -> None:
    """``-m`` with a multi-process profile: each job starts its own ranks, one job at a
    time, from the job's own overrides (``runtime/job_processes.py``), with Hydra's
    basic launcher. A launcher that starts each job's processes itself (submitit on
    SLURM: ``srun`` runs the job once per task) is left alone. One that runs several
    jobs at once in worker processes (joblib) is refused: its workers are not this
    program, and the jobs' process groups would meet on one machine unplanned."""
    from hydra.core.hydra_config import HydraConfig

    if launcher is None and HydraConfig.initialized():
        launcher = str(HydraConfig.get().launcher.get("_target_", ""))
    if not launcher or "submitit" in launcher or launcher.endswith(".BasicLauncher"):
        return
    n = processes_per_run(cfg)
    strategy = cfg.trainer.get("strategy")
    name = strategy if isinstance(strategy, str) else str(strategy.get("_target_", ""))
    parallel = any(k in name.lower() for k in ("ddp", "fsdp"))
    if (n is not None and n > 1) or (n is None and parallel):
        chosen = OmegaConf.select(cfg, "hydra.runtime.choices.trainer")  # in the sweeper
        profile = f"trainer={chosen}" if chosen else _choice(cfg, "trainer")
        short = launcher.rsplit(".", 1)[-1]
        raise ConfigError(
            f"-m with the {short} cannot run {profile} runs: it runs jobs in worker "
            f"processes, and each job would start {n or 'several'} processes of its own",
            "run the jobs one at a time (Hydra's default launcher, hydra/launcher=basic), "
            "or give every job one process (trainer=cpu or trainer=gpu)",
        )


def check_hardware(cfg: DictConfig) -> None:
    """GPU profiles need CUDA; say so before anything starts."""
    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    if accelerator not in GPU_ACCELERATORS:  # FSDP too: trainer=fsdp_cpu runs on gloo
        return
    import torch  # only now: CPU configs are checked without importing torch

    if not torch.cuda.is_available():
        raise ConfigError(
            f"this trainer profile needs a CUDA GPU (trainer.accelerator={accelerator}), "
            "but torch sees none",
            "use trainer=cpu (or trainer=ddp_cpu for several processes), "
            "or run on a machine with an NVIDIA GPU and a CUDA build of torch",
        )
    check_gpu_bf16(cfg)


def check_gpu_bf16(cfg: DictConfig) -> None:
    """bf16 on a GPU that does not compute in it natively (before Ampere) is emulated
    and slow, or fails inside a kernel: refuse it before the run starts."""
    import torch

    precision = str(cfg.trainer.get("precision"))
    if not precision.startswith("bf16") or torch.cuda.is_bf16_supported(including_emulation=False):
        return
    name = torch.cuda.get_device_name()
    major, minor = torch.cuda.get_device_capability()
    raise ConfigError(
        f"trainer.precision={precision} needs a GPU with native bf16 (compute capability "
        f"8.0+, Ampere or newer), but this {name} has {major}.{minor}",
        "use trainer.precision=16-mixed (fp16 with a grad scaler), or trainer.precision=auto",
    )


def check_modality(cfg: DictConfig) -> None:
    """Text data needs a text model (``takes = "text"``). Text data has no ``data.shape``,
    so ``check_model_takes_data`` (which reads the shape) leaves it to this check; a text
    model given tensor data is refused there."""
    from hydra.utils import get_object

    from dltrain.config.model_data import model_kind

    data_target = cfg.data.get("_target_") if cfg.get("data") is not None else None
    model_target = cfg.model.get("_target_") if cfg.get("model") is not None else None
    if not data_target or not model_target:
        return
    try:
        gives = str(getattr(get_object(str(data_target)), "gives", "tensors"))
        takes = model_kind(str(model_target))
    except Exception:  # noqa: BLE001 - a bad _target_ is reported when it is instantiated
        return
    if gives == "text" and takes != "text":
        m, d = _choice(cfg, "model"), _choice(cfg, "data")
        raise ConfigError(
            f"model {m} reads tensors (images or arrays), but data {d} holds text",
            "use a text model (model=textcnn or model=hf_classifier) for text data",
        )
    if gives == "tables" and takes not in ("tables", "any"):
        m, d = _choice(cfg, "model"), _choice(cfg, "data")
        raise ConfigError(
            f"model {m} reads {takes}, but data {d} is a table",
            "use model=mlp, model=ft_transformer, model=xgboost or model=lightgbm for tables",
        )
    if takes == "tables" and gives != "tables":
        m, d = _choice(cfg, "model"), _choice(cfg, "data")
        raise ConfigError(
            f"model {m} reads tables, but data {d} is not one",
            "use data=tabular (data.path=<file.csv> data.target=<column>), data=diamonds "
            "or data=credit",
        )


def _choice(cfg: DictConfig, group: str) -> str:
    """``model=textcnn`` as the user chose it, or the node's ``_target_`` outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get(group)
        if choice:
            return f"{group}={choice}"
    return f"'{cfg[group].get('_target_')}'"
