"""``trainer.precision=auto``: the fastest precision the hardware runs natively.

bf16 autocast pays only where the hardware computes in bf16 natively: CUDA GPUs with
bf16 (compute capability 8.0+, Ampere or newer) and CPUs with AMX tiles (Intel
Sapphire Rapids and newer). A CPU with AVX512-BF16 only has bf16 dot products, and the
conversions around them cost more than they save: on the development machine (AMD EPYC,
AVX512-BF16, no AMX) ``mnist_speed`` trained in 17.2/15.7 s with bf16 against 14.4/14.4 s
in fp32. So: bf16-mixed on those, fp16 mixed with a grad scaler on older GPUs, and fp32
on other CPUs.
"""

from __future__ import annotations

from pathlib import Path

AUTO = "auto"
#: /proc/cpuinfo flags of the AMX units that run bf16 matrix products.
AMX_FLAGS = frozenset({"amx_bf16", "amx_tile"})
GPU_ACCELERATORS = ("gpu", "cuda")


def cpu_has_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU has AMX bf16 tiles (Linux: ``/proc/cpuinfo`` flags; elsewhere
    torch's own check)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        import torch

        check = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool(check and check())
    for line in text.splitlines():
        if line.startswith("flags"):
            return AMX_FLAGS <= set(line.split(":", 1)[1].split())
    return False


def gpu_has_bf16() -> bool:
    """Whether the current CUDA GPU computes in bf16 natively (not emulated)."""
    import torch

    return bool(
        torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    )


def resolve(precision: object, accelerator: str) -> object:
    """The Lightning precision for ``trainer.precision`` (``auto`` resolved) on
    ``accelerator``; any other value is returned as it is."""
    if str(precision) != AUTO:
        return precision
    if accelerator == "auto":
        import torch

        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator in GPU_ACCELERATORS:
        return "bf16-mixed" if gpu_has_bf16() else "16-mixed"
    if accelerator == "cpu":
        return "bf16-mixed" if cpu_has_amx() else "32-true"
    return "32-true"
