"""Any Hugging Face encoder with a classification head.

A plain ``nn.Module``: it takes the text batch (``input_ids``, ``attention_mask``) and
returns logits, so the ``Classifier`` trains it like any other net. ``param_groups``
gives the optimizer the fine-tuning recipe's parameter groups.

Two ways to turn the tokens' vectors into one per text (``pooling``):

- ``cls``: ``AutoModelForSequenceClassification``, the head on the ``[CLS]`` token
  (through BERT's pooler); what BERT-style checkpoints were pre-trained for.
- ``mean``: the mean of the token vectors (padding excluded), then dropout and a linear
  layer. Sentence-transformers checkpoints (all-MiniLM-L6-v2, ...) were trained to put
  the sentence's meaning there, not in ``[CLS]``; they record it in
  ``1_Pooling/config.json``, which ``auto`` reads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from annotated_types import Interval
from torch import Tensor, nn

from dltrain import hub
from dltrain.errors import ConfigError
from dltrain.nets.layers import Dropout, NonNegative

#: Where a parameter sits in the stack: ``...layer.3.`` (BERT-like) or ``...layers.3.``.
LAYER_INDEX = re.compile(r"\.layers?\.(\d+)\.")
Pooling = Literal["cls", "mean", "auto"]
POOLINGS = get_args(Pooling)
#: Where a sentence-transformers checkpoint records its pooling.
POOLING_CONFIG = "1_Pooling/config.json"


class HFSequenceClassifier(nn.Module):
    """A pretrained encoder plus a fresh classification head.

    Args:
        name_or_path: Hub id (``bert-base-uncased``), local folder, or
            ``package:<module>/<folder>`` for weights shipped in a Python package.
        num_labels: number of classes (from the data).
        freeze_encoder: train only the head (the encoder's weights stay fixed).
        frozen_layers: keep the embeddings and this many of the lowest layers fixed
            (0: train everything); cheaper steps, since nothing below them needs gradients.
        layer_lr_decay: layer-wise learning-rate decay: the top layer and head train at
            the optimizer's ``lr``, each layer below at ``layer_lr_decay`` times the one
            above, the embeddings lowest. 1.0: one learning rate for all.
        gradient_checkpointing: recompute activations in the backward pass (less memory,
            about 30% more compute).
        pooling: ``cls``, ``mean`` or ``auto`` (the checkpoint's ``1_Pooling/config.json``
            when it has one, else ``cls``); see the module docstring.
        head_dropout: dropout before the linear head; ``None``: the checkpoint's own
            (``classifier_dropout``, else ``hidden_dropout_prob``).
        peft: ``lora``: train LoRA adapters and the head only (nets/lora.py), with
            ``lora``'s r, alpha, dropout and target_modules; checkpoints then hold only
            what trains. ``none``: the layers train as the settings above say.
    """

    takes = "text"  # see dltrain.config.model_data

    def __init__(
        self,
        name_or_path: str,
        num_labels: int,
        freeze_encoder: bool = False,
        frozen_layers: NonNegative = 0,
        layer_lr_decay: Annotated[float, Interval(gt=0, le=1)] = 1.0,
        gradient_checkpointing: bool = False,
        pooling: Pooling = "auto",
        head_dropout: Dropout | None = None,
        peft: Literal["none", "lora"] = "none",
        lora: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 < float(layer_lr_decay) <= 1.0:
            raise ConfigError(
                f"model.layer_lr_decay={layer_lr_decay} is outside (0, 1]",
                "use 1.0 for no decay, or e.g. 0.9",
            )
        if head_dropout is not None and not 0.0 <= float(head_dropout) < 1.0:
            raise ConfigError(
                f"model.head_dropout={head_dropout} is outside [0, 1)",
                "use e.g. 0.1, or null for the checkpoint's own",
            )
        self.pooling = resolve_pooling(pooling, name_or_path)
        if self.pooling == "cls":
            self.model = load_pretrained(name_or_path, int(num_labels), head_dropout)
            self.head: nn.Module | None = None
        else:
            self.model = load_pretrained(name_or_path, None)
            self.head = mean_pooling_head(self.model.config, int(num_labels), head_dropout)
        # from_pretrained returns the model in eval mode, and Lightning keeps the modes
        # it finds: without this, dropout would stay off during fine-tuning.
        self.model.train()
        self.layer_lr_decay = float(layer_lr_decay)
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        if freeze_encoder:
            self.model.base_model.requires_grad_(False)  # the encoder itself when mean
        if frozen_layers > 0:
            depth_of = self._depths()
            for name, p in self.named_parameters():
                if depth_of[name] <= frozen_layers:  # embeddings are depth 0
                    p.requires_grad_(False)
        if peft == "lora":
            from dltrain.nets import lora as lora_adapters

            self.model = lora_adapters.add_lora(self.model, lora, with_head=self.head is None)
            lora_adapters.keep_only_trained(self)
        elif peft != "none":
            raise ConfigError(f"model.peft={peft} is not known", "use model.peft=lora or none")

    def forward(self, x: dict[str, Tensor]) -> Tensor:
        if self.head is None:
            return self.model(**x).logits
        hidden = self.model(**x).last_hidden_state
        return self.head(masked_mean(hidden, x["attention_mask"]))

    def param_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters grouped as in the usual fine-tuning recipe: no weight
        decay on biases and normalisation weights; per-layer learning rates when
        ``layer_lr_decay < 1``, as ``lr_scale`` (a factor on the optimizer's ``lr`` that
        the Classifier applies)."""
        depth_of = self._depths()
        top = max(depth_of.values(), default=0)
        groups: dict[tuple[int, bool], list[nn.Parameter]] = {}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            # Depth only matters with decay; otherwise two groups: decay or not.
            depth = depth_of[name] if self.layer_lr_decay < 1.0 else top
            groups.setdefault((depth, p.ndim > 1), []).append(p)  # biases, norms: 1-D
        out = []
        for (depth, decay), params in sorted(groups.items()):
            # Named groups: the learning-rate monitor logs e.g. lr-AdamW/layer3.
            level = "all" if self.layer_lr_decay == 1.0 else _level_name(depth, top)
            group: dict[str, Any] = {"params": params, "name": level}
            if not decay:
                group.update(weight_decay=0.0, name=f"{level}_no_decay")
            if self.layer_lr_decay < 1.0:
                group["lr_scale"] = self.layer_lr_decay ** (top - depth)
            out.append(group)
        return out

    def _depths(self) -> dict[str, int]:
        """0 for the embeddings, i + 1 for layer i, the top for everything else (head)."""
        n_layers = int(getattr(self.model.config, "num_hidden_layers", 0) or 0)
        depths = {}
        for name, _ in self.named_parameters():
            m = LAYER_INDEX.search(name)
            if m:
                depths[name] = int(m.group(1)) + 1
            elif "embed" in name:
                depths[name] = 0
            else:
                depths[name] = n_layers + 1
        return depths


def _level_name(depth: int, top: int) -> str:
    return "head" if depth == top else "embeddings" if depth == 0 else f"layer{depth - 1}"


def masked_mean(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``hidden`` ``(B, T, H)`` over the tokens where ``mask`` ``(B, T)`` is 1:
    sentence-transformers' mean pooling (padding does not count)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def mean_pooling_head(config: Any, num_labels: int, dropout: float | None) -> nn.Sequential:
    """Dropout and a linear layer on the pooled vector, initialised as Hugging Face
    initialises its classification heads (normal, ``initializer_range``; zero bias)."""
    linear = nn.Linear(int(config.hidden_size), num_labels)
    nn.init.normal_(linear.weight, std=float(getattr(config, "initializer_range", 0.02)))
    nn.init.zeros_(linear.bias)
    return nn.Sequential(nn.Dropout(_head_dropout(config, dropout)), linear)


def _head_dropout(config: Any, dropout: float | None) -> float:
    """The given dropout, else the checkpoint's head dropout (as its own head would use)."""
    if dropout is not None:
        return float(dropout)
    for key in ("classifier_dropout", "hidden_dropout_prob", "dropout"):
        value = getattr(config, key, None)
        if value is not None:
            return float(value)
    return 0.1


def resolve_pooling(pooling: str, name_or_path: str) -> str:
    """``cls`` or ``mean``: as given, or for ``auto`` what the checkpoint records."""
    if pooling not in POOLINGS:
        raise ConfigError(
            f"model.pooling={pooling} is not one of {', '.join(POOLINGS)}",
            "use mean (sentence-transformers checkpoints), cls (BERT-style [CLS] head) "
            "or auto (what the checkpoint's 1_Pooling/config.json says)",
        )
    if pooling != "auto":
        return pooling
    recorded = pooling_config(name_or_path)
    if recorded is None:
        return "cls"  # a plain Hugging Face checkpoint: its [CLS] head
    if recorded.get("pooling_mode_mean_tokens"):
        return "mean"
    if recorded.get("pooling_mode_cls_token"):
        return "cls"
    modes = ", ".join(k for k, v in recorded.items() if k.startswith("pooling_mode") and v)
    raise ConfigError(
        f"{name_or_path} was trained with pooling {modes or 'none'}, which model.pooling "
        "does not offer",
        "set model.pooling=mean or model.pooling=cls",
    )


def pooling_config(name_or_path: str) -> dict[str, Any] | None:
    """The checkpoint's ``1_Pooling/config.json``: from its folder, or for a Hub name from
    the Hub (or its local cache when offline); ``None`` when it has none."""
    path = hub.resolve(name_or_path)
    if hub.is_local(path):
        file: Path | None = Path(path) / POOLING_CONFIG
    else:
        file = _hub_file(path, POOLING_CONFIG)
    if file is None or not file.is_file():
        return None
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as ex:
        raise ConfigError(
            f"cannot read {file}: {ex}", "set model.pooling=mean or model.pooling=cls"
        ) from ex


def _hub_file(repo: str, filename: str) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo, filename, local_files_only=hub.offline()))
    except (EntryNotFoundError, LocalEntryNotFoundError, OSError, ValueError):
        return None  # no such file (or the model itself is missing: loading says so)


def load_pretrained(
    name_or_path: str, num_labels: int | None, head_dropout: float | None = None
) -> nn.Module:
    """``AutoModelForSequenceClassification`` (``num_labels`` given) or the bare encoder
    (``AutoModel``, ``None``) from a folder, a package or the Hub, without network retries
    when the Hub cannot be reached (see ``dltrain.hub``)."""
    from transformers import AutoModel, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    # The new head's "weights newly initialized" notice is expected for fine-tuning.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # one line per weight file is noise in a run log
    needs = "the folder needs config.json and the weights (model.safetensors)"
    try:
        if num_labels is None:
            encoder = hub.from_pretrained("model", AutoModel.from_pretrained, name_or_path, needs)
            # BERT's [CLS] pooler is unused under mean pooling: parameters without
            # gradients would stall DDP (unused parameters) and cost optimizer steps.
            if getattr(encoder, "pooler", None) is not None:
                encoder.pooler = None
            return encoder
        extra = {} if head_dropout is None else {"classifier_dropout": float(head_dropout)}
        return hub.from_pretrained(
            "model",
            AutoModelForSequenceClassification.from_pretrained,
            name_or_path,
            needs,
            num_labels=num_labels,
            # A checkpoint already fine-tuned for another class count gets a new head.
            ignore_mismatched_sizes=True,
            **extra,
        )
    finally:
        hf_logging.set_verbosity(verbosity)
