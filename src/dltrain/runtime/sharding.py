"""What ``trainer=fsdp`` shards and in which precision.

FSDP shards, gathers and frees parameters one wrapped unit at a time; without an
auto-wrap policy the whole net is one unit, gathered in full on every rank for every
step, which is DDP's memory with FSDP's communication. Here the unit is the repeated
block of each model family (transformer layers for ``vit``, ``vit_b16``,
``transformer_seq`` and Hugging Face encoders; residual blocks for ``resnet``), found
by walking the net, or, for nets without such blocks, any subtree above a size.

Mixed precision: Lightning's FSDP ``bf16-mixed`` gathers parameters, reduces gradients
and keeps buffers (BatchNorm statistics) in bf16, unlike ``trainer=bf16`` (fp32
weights under autocast). This policy computes in bf16 (or fp16) but reduces gradients
in fp32, keeps buffers in fp32 and runs norm layers in fp32 (FSDP wraps them apart with
mixed precision off); Lightning's autocast still runs softmax and the loss in fp32.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from torch import nn

#: Nets without known blocks: wrap any subtree holding at least this many parameters.
MIN_PARAMS_PER_UNIT = 1_000_000
#: Block classes by dotted name, so that torchvision need not be imported to check.
KNOWN_BLOCKS = frozenset({
    "torch.nn.modules.transformer.TransformerEncoderLayer",
    "torch.nn.modules.transformer.TransformerDecoderLayer",
    "torchvision.models.vision_transformer.EncoderBlock",
    "torchvision.models.resnet.BasicBlock",
    "torchvision.models.resnet.Bottleneck",
})  # fmt: skip
NORMS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
)


def block_types(net: nn.Module) -> set[type[nn.Module]]:
    """The classes of the net's repeated blocks: a net's own ``fsdp_blocks`` (a user's
    net can name its blocks), the known transformer and residual blocks, and the layers
    a Hugging Face model names in ``_no_split_modules``."""
    own = getattr(net, "fsdp_blocks", None)
    if own:
        return set(own)
    hf_names: set[str] = set()
    for module in net.modules():
        hf_names.update(getattr(module, "_no_split_modules", None) or ())
    found: set[type[nn.Module]] = set()
    for module in net.modules():
        cls = type(module)
        if f"{cls.__module__}.{cls.__qualname__}" in KNOWN_BLOCKS or cls.__name__ in hf_names:
            found.add(cls)
    return found


def wrap_policy(net: nn.Module) -> set[type[nn.Module]] | Callable[..., bool]:
    """FSDP's ``auto_wrap_policy`` for this net: its block classes, or a size-based
    policy when it has none (Lightning turns a set of classes into ``ModuleWrapPolicy``)."""
    blocks = block_types(net)
    if blocks:
        return blocks
    from torch.distributed.fsdp.wrap import size_based_auto_wrap_policy

    return functools.partial(size_based_auto_wrap_policy, min_num_params=MIN_PARAMS_PER_UNIT)


def mixed_precision(precision: str) -> Any:
    """FSDP's ``MixedPrecision`` for a Lightning precision string, or ``None`` (fp32)."""
    import torch
    from torch.distributed.fsdp import MixedPrecision

    compute = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(str(precision))
    if compute is None:
        return None
    return MixedPrecision(
        param_dtype=compute,
        reduce_dtype=torch.float32,
        buffer_dtype=torch.float32,
        _module_classes_to_ignore=NORMS,
    )


def strategy_kwargs(net: nn.Module, precision: str) -> dict[str, Any]:
    """Arguments for Lightning's ``FSDPStrategy``: wrap policy, precision policy and
    full (single-file) checkpoints, which ``dl-eval`` and ``dl-predict`` load with
    ``weights_only=True``."""
    return {
        "auto_wrap_policy": wrap_policy(net),
        "mixed_precision": mixed_precision(precision),
        "state_dict_type": "full",
    }
