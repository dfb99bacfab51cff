"""Any Hugging Face encoder with a classification head (``AutoModelForSequenceClassification``).

A plain ``nn.Module``: it takes the text batch (``input_ids``, ``attention_mask``) and
returns logits, so the ``Classifier`` trains it like any other net. ``param_groups``
gives the optimizer the fine-tuning recipe's parameter groups.
"""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor, nn

from dltrain import hub
from dltrain.errors import ConfigError

#: Where a parameter sits in the stack: ``...layer.3.`` (BERT-like) or ``...layers.3.``.
LAYER_INDEX = re.compile(r"\.layers?\.(\d+)\.")


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
    """

    takes = "text"  # see dltrain.config.model_data

    def __init__(
        self,
        name_or_path: str,
        num_labels: int,
        freeze_encoder: bool = False,
        frozen_layers: int = 0,
        layer_lr_decay: float = 1.0,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 < float(layer_lr_decay) <= 1.0:
            raise ConfigError(
                f"model.layer_lr_decay={layer_lr_decay} is outside (0, 1]",
                "use 1.0 for no decay, or e.g. 0.9",
            )
        self.model = load_pretrained(name_or_path, int(num_labels))
        # from_pretrained returns the model in eval mode, and Lightning keeps the modes
        # it finds: without this, dropout would stay off during fine-tuning.
        self.model.train()
        self.layer_lr_decay = float(layer_lr_decay)
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        if freeze_encoder:
            self.model.base_model.requires_grad_(False)
        if frozen_layers > 0:
            depth_of = self._depths()
            for name, p in self.model.named_parameters():
                if depth_of[name] <= frozen_layers:  # embeddings are depth 0
                    p.requires_grad_(False)

    def forward(self, x: dict[str, Tensor]) -> Tensor:
        return self.model(**x).logits

    def param_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters grouped as in the usual fine-tuning recipe: no weight
        decay on biases and normalisation weights; per-layer learning rates when
        ``layer_lr_decay < 1``, as ``lr_scale`` (a factor on the optimizer's ``lr`` that
        the Classifier applies)."""
        depth_of = self._depths()
        top = max(depth_of.values(), default=0)
        groups: dict[tuple[int, bool], list[nn.Parameter]] = {}
        for name, p in self.model.named_parameters():
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
        for name, _ in self.model.named_parameters():
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


def load_pretrained(name_or_path: str, num_labels: int) -> nn.Module:
    """``AutoModelForSequenceClassification`` from a folder, a package or the Hub, without
    network retries when the Hub cannot be reached (see ``dltrain.hub``)."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    # The new head's "weights newly initialized" notice is expected for fine-tuning.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # one line per weight file is noise in a run log
    try:
        return hub.from_pretrained(
            "model",
            AutoModelForSequenceClassification.from_pretrained,
            name_or_path,
            "the folder needs config.json and the weights (model.safetensors)",
            num_labels=num_labels,
            # A checkpoint already fine-tuned for another class count gets a new head.
            ignore_mismatched_sizes=True,
        )
    finally:
        hf_logging.set_verbosity(verbosity)
