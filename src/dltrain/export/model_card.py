"""``MODEL_CARD.md``: the card for people, written from ``card.json``'s own values (so
the two never disagree), with the few lines of Python that run the model."""

from __future__ import annotations

import json
from pathlib import Path

from dltrain.export.card import MODEL_CARD_FILE, ExportCard

RUN_ONNX = """```python
import numpy as np, onnxruntime as ort
session = ort.InferenceSession("{model}", providers=["CPUExecutionProvider"])
samples = np.load("samples.npz")
outputs = session.run(None, {{name: samples[name] for name in {names}}})[0]
print(np.abs(outputs - samples["expected"]).max())
```"""


def write_model_card(folder: Path, card: ExportCard) -> Path:
    path = Path(folder) / MODEL_CARD_FILE
    path.write_text("\n".join(_lines(card)) + "\n")
    return path


def _lines(card: ExportCard) -> list[str]:
    spec = card.input
    fmt = card.format + (" (int8, dynamic quantization)" if card.quantized else "")
    out = [
        f"# Model card: {card.net.rsplit('.', 1)[-1]}",
        "",
        f"- Format: {fmt}, file `{card.model_file}`",
        f"- Task: {card.task}" + (f", {len(card.labels)} classes" if card.labels else ""),
        f"- Exported: {card.created} from `{card.checkpoint}`",
    ]
    if card.labels:
        out.append("- Labels (by output index): " + ", ".join(card.labels))
    out += ["", "## Inputs", "", f"Kind: {spec.kind}.", ""]
    out += [f"- `{t.name}`: {t.dtype} {t.shape}" for t in spec.tensors]
    out += ["", *_preparation(card)]
    shape = card.output.shape
    out += ["", "## Output", "", f"`{card.output.name}`: {card.output.dtype} {shape}"]
    out += ["", "## Metrics", ""]
    out += _metrics("The training run's test metrics", card.metrics)
    out += _metrics("This file's score on the same test split (ONNX Runtime)", card.export_metrics)
    if card.parity_max_abs_diff is not None:
        out.append(
            f"- Largest difference from the checkpoint's outputs on `samples.npz`: "
            f"{card.parity_max_abs_diff:.3g}"
        )
    if card.format == "onnx":
        names = [t.name for t in spec.tensors]
        out += ["", "## Running it", "", RUN_ONNX.format(model=card.model_file, names=names)]
    out += ["", "## Versions", ""]
    out += [f"- {k} {v}" for k, v in card.versions.items()]
    out += ["", "## Training config", "", "```json", json.dumps(card.config, indent=2), "```"]
    return out


def _preparation(card: ExportCard) -> list[str]:
    spec = card.input
    if spec.kind in ("image", "sequence") and spec.normalization is not None:
        n = spec.normalization
        lines = [
            "Normalisation is not part of the graph; apply it per channel c before running:",
            f"`x = (stored / {n.scale:g} - mean[c]) / std[c]` with mean = {n.mean}, "
            f"std = {n.std}.",
        ]
        if spec.stored_shape and spec.stored_shape != spec.shape:
            lines.append(
                f"Resize images to {spec.stored_shape[1:]}, then center-crop to {spec.shape[1:]}."
            )
        return lines
    if spec.kind == "text":
        return [
            f"Tokenize with `{spec.tokenizer}` (tokenizers library), truncated to "
            f"{spec.max_length} tokens, right-padded with id {spec.pad_id} to the longest "
            f"text of the batch (at least {spec.min_length}); attention_mask 1 on tokens.",
        ]
    if spec.kind == "table":
        pre = spec.preprocessing or {}
        return [
            "Rows go through the fitted preprocessing in card.json (`input.preprocessing`): "
            f"numeric columns {pre.get('numeric')} ({pre.get('scaling')} scaling, missing "
            f"values filled with training medians), then missing indicators "
            f"{pre.get('indicators')}, then category codes of {pre.get('categorical')} "
            "(0 unseen, 1 missing, 2.. the training levels).",
        ]
    return []


def _metrics(title: str, metrics: dict[str, float]) -> list[str]:
    if not metrics:
        return []
    shown = ", ".join(f"{k} = {v:.4f}" for k, v in sorted(metrics.items()))
    return [f"- {title}: {shown}"]
