"""Writing an export folder (layout and card: ``card.py``) for a net: the model file
in the asked format, the samples with the checkpoint's outputs, ``card.json`` and
``MODEL_CARD.md``; for ONNX, the parity on the samples and the test-split score of the
file itself, measured with ONNX Runtime."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dltrain.errors import ConfigError, RunError
from dltrain.export import graphs, onnx_runtime
from dltrain.export.card import (
    BATCH,
    FORMATS,
    INT8_FOLDER,
    SAMPLES_FILE,
    TOKENIZER_FILE,
    ExportCard,
    OutputSpec,
)
from dltrain.export.model_card import write_model_card
from dltrain.export.source import Source, to_numpy
from dltrain.export.versions import versions

#: fp32 ONNX Runtime outputs must match the checkpoint's this closely on the samples.
PARITY_TOL = 1e-4
#: Text examples are padded to at least this many tokens (mask 0: outputs unchanged), so
#: torch.export sees the general path of a net that pads short texts itself (TextCNN).
MIN_EXAMPLE_TOKENS = 16


@dataclass
class Request:
    """What ``dl-export`` was asked for."""

    format: str = "onnx"
    quantize: str | None = None
    samples: int = 8
    checkpoint: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # the run's test metrics
    score: bool = True  # score the export on the whole test split (ONNX)


def export(source: Source, out_root: Path, req: Request) -> list[Path]:
    """Write ``out_root/<folder>/`` for ``req.format`` (and ``onnx-int8`` with
    ``quantize=int8``); return the folders written."""
    if req.format not in FORMATS or req.format == "booster":
        names = ", ".join(k for k in FORMATS if k != "booster")
        raise ConfigError(f"format={req.format} is not one of {names}", "use format=onnx")
    if req.quantize not in (None, "int8"):
        raise ConfigError(f"quantize={req.quantize} is not supported", "use quantize=int8")
    if req.quantize and req.format != "onnx":
        raise ConfigError(
            f"quantize=int8 applies to ONNX models, not format={req.format}",
            "use format=onnx quantize=int8",
        )
    x, y = source.samples(max(int(req.samples), 2))
    if source.kind == "text":
        x = pad_text(x, MIN_EXAMPLE_TOKENS, source.spec.pad_id)
    output = "value" if source.task == "regression" else "logits"
    graph = graphs.graph_of(source.net, x, output)
    with torch.inference_mode():
        expected = source.net(x).float().numpy()
    card = _card(source, graph, expected, req)
    folder = _fresh(out_root / FORMATS[req.format][0])
    path = folder / card.model_file
    try:
        _write_model(source, graph, card, path, req)
        if req.format == "onnx":
            _check_onnx(source, card, path, x, expected, req.score, strict=True)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # no half-written export left behind
        raise
    _finish(folder, source, card, x, y, expected)
    written = [folder]
    if req.quantize == "int8":
        written.append(_int8(source, out_root, card, path, x, y, expected, req.score))
    return written


def _write_model(
    source: Source, graph: graphs.Graph, card: ExportCard, path: Path, req: Request
) -> None:
    if req.format == "safetensors":
        _write_safetensors(source.net, req.config, path)
        return
    program = graphs.export_program(graph)
    if source.kind == "text":
        card.input.min_length = graphs.min_sequence(program)
    if req.format == "pt2":
        torch.export.save(program, str(path))
    else:
        graphs.to_onnx(graph, program, path)


def pad_text(x: dict[str, Tensor], width: int, pad_id: int) -> dict[str, Tensor]:
    short = width - x["input_ids"].shape[1]
    if short <= 0:
        return x
    pad = nn.functional.pad
    return {
        "input_ids": pad(x["input_ids"], (0, short), value=pad_id),
        "attention_mask": pad(x["attention_mask"], (0, short), value=0),
    }


def _card(source: Source, graph: graphs.Graph, expected: np.ndarray, req: Request) -> ExportCard:
    source.spec.tensors = graph.tensors
    model_file = FORMATS[req.format][1]
    net = type(source.net)
    return ExportCard(
        format=req.format,
        model_file=model_file,
        task=source.task,
        labels=source.labels,
        input=source.spec,
        output=OutputSpec(graph.output, "float32", [BATCH, int(expected.shape[-1])]),
        net=f"{net.__module__}.{net.__qualname__}",
        metrics=dict(req.metrics),
        checkpoint=req.checkpoint,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        config=req.config,
        versions=versions(req.format, source.kind == "text"),
    )


def _check_onnx(
    source: Source,
    card: ExportCard,
    path: Path,
    x: Any,
    expected: np.ndarray,
    score: bool,
    strict: bool,
) -> None:
    """Parity on the samples (fp32: fails above ``PARITY_TOL``) and the test score."""
    sess = onnx_runtime.session(path)
    got = onnx_runtime.run(sess, to_numpy(x))
    diff = float(np.abs(got.astype(np.float64) - expected).max())
    card.parity_max_abs_diff = diff
    if strict and not diff <= PARITY_TOL:
        raise RunError(
            f"the ONNX model's outputs differ from the checkpoint's by {diff:.3g} on the "
            f"samples (allowed: {PARITY_TOL})",
            "export format=pt2 or format=safetensors, and report the net to dl-train",
        )
    if score:
        # As a predictor must: a text batch shorter than the graph takes is padded up.
        fit = (lambda b: pad_text(b, card.input.min_length, card.input.pad_id)) if (
            source.kind == "text") else (lambda b: b)  # fmt: skip
        batches = ((to_numpy(fit(bx)), by.numpy()) for bx, by in source.test_batches())
        card.export_metrics = onnx_runtime.score(
            lambda inputs: onnx_runtime.run(sess, inputs), batches, source.task
        )


def _int8(
    source: Source,
    out_root: Path,
    fp32: ExportCard,
    fp32_path: Path,
    x: Any,
    y: Tensor,
    expected: np.ndarray,
    score: bool,
) -> Path:
    folder = _fresh(out_root / INT8_FOLDER)
    card = ExportCard.from_dict(fp32.to_dict())
    card.quantized = "int8"
    card.export_metrics = {}
    onnx_runtime.quantize_int8(fp32_path, folder / card.model_file)
    _check_onnx(source, card, folder / card.model_file, x, expected, score, strict=False)
    _finish(folder, source, card, x, y, expected)
    return folder


def _finish(
    folder: Path, source: Source, card: ExportCard, x: Any, y: Tensor, expected: np.ndarray
) -> None:
    target = y.numpy().astype(np.float32 if source.task == "regression" else np.int64)
    np.savez(folder / SAMPLES_FILE, **to_numpy(x), expected=expected, target=target)
    if source.tokenizer_json:
        (folder / TOKENIZER_FILE).write_text(source.tokenizer_json)
    card.write(folder)
    write_model_card(folder, card)


def _write_safetensors(net: nn.Module, config: dict[str, Any], path: Path) -> None:
    """The weights, and the ``model`` config that rebuilds the net (``model.yaml``)."""
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    # Tied or shared tensors would be refused: save each as its own contiguous copy.
    state = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt"})
    model = OmegaConf.create(config).get("model")
    if model is not None:
        text = OmegaConf.to_yaml(model, resolve=True)
        (path.parent / "model.yaml").write_text(text)


def _fresh(folder: Path) -> Path:
    """An empty folder: nothing of an earlier export is left to mix with this one."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder
