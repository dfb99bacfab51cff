"""LoRA adapters on a Hugging Face encoder, through ``peft`` (``model.peft=lora``).

Only the adapters and the classification head train. The frozen pretrained weights are
left out of the net's ``state_dict`` (so of every checkpoint): the config names them
(``model.name_or_path``), and rebuilding the net from that config loads them before a
checkpoint's adapters are put on top. A checkpoint therefore holds what training
changed, as plain tensors, and still loads strictly: a ``state_dict`` that lacks the
frozen weights has them filled in from the net itself.

``merge_adapters`` folds the adapters into the base weights (peft's
``merge_and_unload``): one plain Hugging Face model again, for export and serving.
"""

from __future__ import annotations

from typing import Any

from torch import nn

#: The keys of ``model.lora`` and peft's ``LoraConfig`` arguments they set.
LORA_KEYS = {"r": "r", "alpha": "lora_alpha", "dropout": "lora_dropout",
             "target_modules": "target_modules"}  # fmt: skip


def add_lora(model: nn.Module, options: dict[str, Any] | None, with_head: bool) -> nn.Module:
    """``model`` wrapped by peft with LoRA adapters; everything else frozen except, when
    ``with_head`` (an ``AutoModelForSequenceClassification``), its classifier head.
    ``options``: ``model.lora`` (r, alpha, dropout, target_modules; ``null`` targets:
    peft's default for the architecture, BERT's ``query`` and ``value``)."""
    from peft import LoraConfig, TaskType, get_peft_model

    from dltrain.errors import ConfigError

    options = dict(options or {})
    unknown = sorted(set(options) - set(LORA_KEYS))
    if unknown:
        raise ConfigError(
            f"model.lora.{unknown[0]} is not a LoRA setting",
            f"use {', '.join(f'model.lora.{k}' for k in LORA_KEYS)}",
        )
    given = {LORA_KEYS[k]: v for k, v in options.items() if v is not None}
    if "target_modules" in given:
        given["target_modules"] = list(given["target_modules"])
    task = TaskType.SEQ_CLS if with_head else TaskType.FEATURE_EXTRACTION
    try:
        config = LoraConfig(task_type=task, **given)
        return get_peft_model(model, config)
    except ValueError as ex:  # e.g. target modules the model does not have
        raise ConfigError(f"model.lora: {str(ex).splitlines()[0][:200]}",
                          "check model.lora.target_modules against the model's layer names "
                          "(null: peft's default for the architecture)") from ex  # fmt: skip


def keep_only_trained(net: nn.Module) -> None:
    """Leave ``net``'s frozen parameters out of its ``state_dict`` and accept state
    dicts without them (see the module docstring). Call once the adapters are added."""
    frozen = {name for name, p in net.named_parameters() if not p.requires_grad}
    own = dict(net.named_parameters())

    def drop_frozen(module: nn.Module, state: dict[str, Any], prefix: str, meta: Any) -> None:
        for name in frozen:
            state.pop(prefix + name, None)

    def fill_frozen(module: nn.Module, state: dict[str, Any], prefix: str, *args: Any) -> None:
        for name in frozen:
            state.setdefault(prefix + name, own[name].detach())

    net.lora_hooks = [net.register_state_dict_post_hook(drop_frozen),
                      net.register_load_state_dict_pre_hook(fill_frozen)]  # fmt: skip


def merge_adapters(net: nn.Module) -> nn.Module:
    """Fold LoRA adapters into the base weights, in place: ``net.model`` becomes the
    plain Hugging Face model (peft's ``merge_and_unload``) and every parameter is stored
    again. A net without adapters is returned as it is."""
    from peft import PeftModel

    model = getattr(net, "model", None)
    if not isinstance(model, PeftModel):
        return net
    merged = model.merge_and_unload()
    for handle in getattr(net, "lora_hooks", []):  # every weight is trained state now
        handle.remove()
    net.lora_hooks = []
    net.model = merged
    return net
