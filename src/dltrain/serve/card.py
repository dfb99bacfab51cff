"""Reading an export folder (``<run dir>/export/onnx/``) written by ``dl-export``.

The folder holds ``model.onnx`` and ``card.json``: the task, the label names, and what
the inputs need (image shape and normalisation statistics; the tokenizer file and
``max_length``; the fitted table preprocessing). ``InputSpec`` is the one form of that
the rest of this package reads, so the card's layout is known in this module only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dltrain.errors import ConfigError, DataError

CARD = "card.json"
KINDS = ("image", "text", "table")


@dataclass
class InputSpec:
    """What a model's inputs need, from a card or from a checkpoint."""

    kind: str  # "image" | "text" | "table"
    task: str = "classification"  # or "regression" (tables)
    labels: list[str] = field(default_factory=list)
    # images: the net's (C, H, W), the shape training stored (center-cropped to shape)
    shape: list[int] = field(default_factory=list)
    stored_shape: list[int] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    # texts
    max_length: int = 0
    pad_id: int = 0
    tokenizer_file: Path | None = None
    text_column: str = "text"
    # tables: ``TabularState.to_dict()`` (plain values)
    table: dict[str, Any] = field(default_factory=dict)

    def label(self, i: int) -> str:
        return self.labels[i] if i < len(self.labels) else str(i)


def is_export_folder(path: str | Path) -> bool:
    """A folder holding a ``card.json`` (what ``dl-predict``/``dl-serve`` decide by,
    before anything heavy is imported)."""
    return (Path(path) / CARD).is_file()


def load_card(folder: str | Path) -> dict[str, Any]:
    """The card as written, for ``GET /card``; a clear error when it is not there."""
    path = Path(folder) / CARD
    if not path.is_file():
        raise DataError(
            f"{folder} is not an export folder (no {CARD})",
            "pass the folder dl-export wrote: <run dir>/export/onnx",
        )
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as ex:
        raise DataError(f"cannot read {path}: {ex}", "export the model again") from ex
    if not isinstance(card, dict):
        raise DataError(f"{path} does not hold a JSON object", "export the model again")
    return card


def model_file(folder: str | Path, card: dict[str, Any]) -> Path:
    path = Path(folder) / str(card.get("model_file") or "model.onnx")
    if path.suffix != ".onnx":
        raise ConfigError(
            f"{folder} holds a {card.get('format') or path.suffix} export, not ONNX",
            "export with format=onnx to predict or serve without torch",
        )
    if not path.is_file():
        raise DataError(f"{path} is missing", "export the model again (dl-export ... format=onnx)")
    return path


def input_spec(folder: str | Path, card: dict[str, Any]) -> InputSpec:
    """The card's input description as an ``InputSpec``."""
    inputs = card.get("input") or {}
    kind = str(inputs.get("kind") or card.get("kind") or "")
    if kind not in KINDS:
        raise DataError(
            f"{Path(folder) / CARD} names input kind '{kind}', not one of {', '.join(KINDS)}",
            "export the model again with this version of dl-train",
        )
    spec = InputSpec(
        kind=kind, task=str(card.get("task") or "classification"), labels=_labels(card)
    )
    if kind == "image":
        spec.shape = [int(s) for s in inputs["shape"]]
        spec.stored_shape = [int(s) for s in inputs.get("stored_shape") or spec.shape]
        norm = inputs.get("normalization") or inputs
        spec.mean, spec.std = [float(v) for v in norm["mean"]], [float(v) for v in norm["std"]]
    elif kind == "text":
        spec.max_length = int(inputs["max_length"])
        spec.pad_id = int(inputs.get("pad_id") or 0)
        spec.tokenizer_file = Path(folder) / str(inputs.get("tokenizer") or "tokenizer.json")
        spec.text_column = str(inputs.get("text_column") or "text")
    else:
        spec.table = dict(inputs["preprocessing"])
        spec.task = str(spec.table.get("task") or spec.task)
        spec.labels = spec.labels or list(spec.table.get("classes") or [])
    return spec


def _labels(card: dict[str, Any]) -> list[str]:
    labels = card.get("labels") or []
    return [str(v) for v in labels]
