"""What an export is made from: the checkpoint's net, and its data module's test split
as the net takes it, plus the card's description of those inputs.

The data module is the training run's own (built from the checkpoint's config, with a
table's fitted preprocessing), so the samples and the test accuracy are of the very
rows ``dl-eval`` scores, prepared exactly as training prepared them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dltrain.errors import DataError
from dltrain.export.card import KINDS, InputSpec, Normalization

#: ``net.takes`` -> the card's input kind; a net without ``takes`` is judged by its data.
TAKES = {"images": "image", "sequences": "sequence", "text": "text", "tables": "table"}

Batch = tuple[Tensor | dict[str, Tensor], Tensor]


@dataclass
class Source:
    """A net in eval mode and how to read its test split; ``labels``/``task`` for the card."""

    net: nn.Module
    datamodule: Any
    kind: str
    task: str
    labels: list[str]
    spec: InputSpec
    tokenizer_json: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def test_batches(self) -> Iterator[Batch]:
        """The test split, batch by batch, as the net takes it (normalised, on the CPU)."""
        dm = self.datamodule
        for batch in dm.test_dataloader():
            x, y = dm.on_after_batch_transfer(batch, 0)
            yield _cpu(x), y.cpu()

    def samples(self, n: int) -> Batch:
        """The first ``n`` test samples (at least 2: the batch dimension is exported
        dynamic, and torch.export needs a batch of 2 or more to keep it so)."""
        xs, ys, have = [], [], 0
        for x, y in self.test_batches():
            xs.append(x)
            ys.append(y)
            have += len(y)
            if have >= n:
                break
        if have < 2:
            raise DataError(
                f"the test split has {have} sample(s); the export needs 2 or more",
                "export a run whose data has a test split of at least 2 samples",
            )
        return _take(_cat(xs), n), torch.cat(ys)[:n]


def describe(net: nn.Module, datamodule: Any, checkpoint: dict[str, Any], table: Any) -> Source:
    """A ``Source`` for ``net`` trained on ``datamodule`` (set up); ``table``: the fitted
    tabular preprocessing (a dict) or None."""
    stats = checkpoint.get("dltrain_data") or {}
    task = str(table.get("task")) if table else "classification"
    kind = _kind(net, datamodule, table)
    if table:
        labels = [str(c) for c in table.get("classes") or []]
    else:
        labels = [str(c) for c in stats.get("classes") or getattr(datamodule, "classes", [])]
    spec = InputSpec(kind=kind, tensors=[])
    tokenizer_json = ""
    if kind in ("image", "sequence"):
        shape = [int(s) for s in datamodule.shape]
        stored = getattr(datamodule, "cache_shape", shape)
        spec.shape, spec.stored_shape = shape, [int(s) for s in stored]
        mean = stats.get("mean") or datamodule.mean.cpu().tolist()
        std = stats.get("std") or datamodule.std.cpu().tolist()
        spec.normalization = Normalization(
            scale=float(datamodule.scale),
            mean=[float(v) for v in mean],
            std=[float(v) for v in std],
        )
    elif kind == "text":
        tok = datamodule.tokenizer
        spec.max_length = int(stats.get("max_length") or datamodule.max_length)
        spec.pad_id = int(tok.pad_id)
        spec.text_column = str(getattr(datamodule, "text_column", None) or "text")
        tokenizer_json = tokenizer_file(tok)
        spec.tokenizer = "tokenizer.json" if tokenizer_json else None
    else:
        spec.preprocessing = {k: v for k, v in dict(table).items() if k != "split"}
    return Source(net, datamodule, kind, task, labels, spec, tokenizer_json)


def tokenizer_file(tok: Any) -> str:
    """The tokenizer as a ``tokenizers`` JSON file: a trained word-level vocabulary's
    own state, or a pretrained (fast) tokenizer's backend."""
    state = tok.state() if callable(getattr(tok, "state", None)) else ""
    if state:
        return str(state)
    backend = getattr(getattr(tok, "tokenizer", None), "backend_tokenizer", None)
    return backend.to_str() if backend is not None else ""


def to_numpy(x: Tensor | dict[str, Tensor]) -> dict[str, np.ndarray]:
    """Graph inputs by name: ``x`` for a tensor batch, the text batch's own keys."""
    if isinstance(x, dict):
        return {k: x[k].long().numpy() for k in ("input_ids", "attention_mask")}
    return {"x": x.float().numpy()}


def _kind(net: nn.Module, datamodule: Any, table: Any) -> str:
    takes = getattr(net, "takes", None)
    if table:
        return "table"
    if takes in TAKES:
        return TAKES[takes]
    if hasattr(datamodule, "tokenizer"):
        return "text"
    shape = list(getattr(datamodule, "shape", []) or [])
    kind = "image" if len(shape) == 3 else "sequence" if len(shape) == 2 else ""
    if kind not in KINDS:
        raise DataError(
            f"cannot tell what {type(net).__name__} takes (data shape {shape})",
            "give the net a class attribute takes = 'images' | 'sequences' | 'text' | 'tables'",
        )
    return kind


def _cpu(x: Tensor | dict[str, Tensor]) -> Tensor | dict[str, Tensor]:
    return {k: v.cpu() for k, v in x.items()} if isinstance(x, dict) else x.cpu()


def _cat(xs: list[Any]) -> Tensor | dict[str, Tensor]:
    if not isinstance(xs[0], dict):
        return torch.cat(xs)
    # Text batches are padded to their own longest text: pad to the widest, then cut.
    width = max(x["input_ids"].shape[1] for x in xs)
    return {
        k: torch.cat([nn.functional.pad(x[k], (0, width - x[k].shape[1])) for x in xs])
        for k in ("input_ids", "attention_mask")
    }


def _take(x: Tensor | dict[str, Tensor], n: int) -> Tensor | dict[str, Tensor]:
    if not isinstance(x, dict):
        return x[:n]
    mask = x["attention_mask"][:n]
    width = max(int(mask.sum(1).max()), 1)
    return {k: v[:n, :width] for k, v in x.items() if k in ("input_ids", "attention_mask")}
