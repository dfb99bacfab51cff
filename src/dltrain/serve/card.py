"""Reading an export folder (``<run dir>/export/onnx/``) written by ``dl-export``.

The folder's contract is ``dltrain/export/card.py`` (standard library only, read here
with its own ``ExportCard.from_dict``). ``InputSpec`` is the one form of it the rest of
this package reads (a checkpoint served by ``dl-serve`` gives one too), so the card's
layout is known in this module only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dltrain.errors import ConfigError, DataError
from dltrain.export.card import CARD_FILE as CARD
from dltrain.export.card import CARD_VERSION, TOKENIZER_FILE, ExportCard

#: The input kinds read here (``sequence`` models: not yet).
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
    scale: float = 255.0  # image files hold 0..255; the statistics are of [0, 1] values
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    # texts
    max_length: int = 0
    pad_id: int = 0
    min_length: int = 1
    tokenizer_file: Path | None = None
    text_column: str = "text"
    # tables: ``TabularState.to_dict()`` (plain values)
    table: dict[str, Any] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)  # the graph's input names

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
    fmt = str(card.get("format") or "")
    if fmt in ("xgboost", "lightgbm"):
        raise ConfigError(
            f"{folder} holds {fmt} boosted trees, which dl-predict/dl-serve do not run "
            "from an export",
            "predict with its checkpoint: dl-predict ckpt_path=<run dir>/checkpoints/"
            "model.ckpt inputs=rows.csv",
        )
    path = Path(folder) / str(card.get("model_file") or "model.onnx")
    if fmt != "onnx" or path.suffix != ".onnx":
        raise ConfigError(
            f"{folder} holds a {card.get('format') or path.suffix} export, not ONNX",
            "export with format=onnx to predict or serve without torch",
        )
    if not path.is_file():
        raise DataError(f"{path} is missing", "export the model again (dl-export ... format=onnx)")
    return path


def input_spec(folder: str | Path, card: dict[str, Any]) -> InputSpec:
    """The card's input description (``dltrain.export.card.ExportCard``) as an
    ``InputSpec``; a card this version cannot read is refused with one line."""
    path = Path(folder) / CARD
    version = card.get("card_version", 1)
    if not isinstance(version, int) or version > CARD_VERSION:
        raise DataError(
            f"{path} is card version {version}, newer than this dl-train reads ({CARD_VERSION})",
            "upgrade dl-train where you predict or serve",
        )
    try:
        parsed = ExportCard.from_dict(card)
    except (TypeError, KeyError, ValueError, AttributeError) as ex:
        raise DataError(
            f"{path} is not a card dl-export wrote ({type(ex).__name__}: {ex})",
            "export the model again with this version of dl-train",
        ) from None
    given = parsed.input
    if given.kind not in KINDS:
        raise DataError(
            f"{path}: a model of {given.kind} inputs, which dl-predict/dl-serve do not read yet",
            f"serve models of {', '.join(KINDS)} inputs, or predict with the checkpoint",
        )
    spec = InputSpec(kind=given.kind, task=parsed.task, labels=[str(v) for v in parsed.labels])
    spec.names = [t.name for t in given.tensors]
    if given.kind == "image":
        norm = given.normalization
        if norm is None:
            raise DataError(f"{path} has no input.normalization", "export the model again")
        spec.shape = [int(v) for v in given.shape]
        spec.stored_shape = [int(v) for v in given.stored_shape or given.shape]
        # Image files hold 0..255 whatever range training stored (norm.scale: 16 for the
        # digits set): divided by 255, as dl-predict on the checkpoint does.
        spec.mean, spec.std = list(norm.mean), list(norm.std)
    elif given.kind == "text":
        spec.max_length, spec.pad_id = int(given.max_length), int(given.pad_id)
        spec.min_length = int(given.min_length or 1)
        spec.tokenizer_file = Path(folder) / str(given.tokenizer or TOKENIZER_FILE)
        spec.text_column = given.text_column
    else:
        spec.table = dict(given.preprocessing or {})
    return spec
