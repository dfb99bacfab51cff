"""One predictor for every input kind: prepare a batch, run the net, shape the answers.

``Predictor`` takes the input spec and a ``forward`` (numpy in, numpy out): ONNX Runtime
for an export folder (``onnx_predictor``), a torch net for a checkpoint
(``commands/serve_checkpoint.py``), so both prepare inputs by the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.errors import ConfigError
from dltrain.serve import card as cards
from dltrain.serve import images, rows, texts

#: a batch's named arrays -> the net's output (logits, or values for regression)
Forward = Callable[[dict[str, np.ndarray]], np.ndarray]


@dataclass
class Predictor:
    spec: cards.InputSpec
    forward: Forward
    encode: texts.Encoder | None = None  # text models
    card: dict[str, Any] | None = None  # what GET /card shows

    @property
    def kind(self) -> str:
        return self.spec.kind

    def images(self, blobs: Sequence[bytes], names: Sequence[str] | None = None) -> np.ndarray:
        """Class probabilities of encoded images."""
        shape = self.spec.stored_shape or self.spec.shape
        decoded = [
            images.decode(b, shape, names[i] if names else f"image {i}")
            for i, b in enumerate(blobs)
        ]
        x = images.batch(decoded, self.spec.shape, self.spec.mean, self.spec.std, self.spec.scale)
        return softmax(self.forward({"x": x}))

    def texts(self, items: Sequence[str]) -> np.ndarray:
        assert self.encode is not None
        ids = self.encode(list(items), self.spec.max_length)
        return softmax(self.forward(texts.batch(ids, self.spec.pad_id, self.spec.min_length)))

    def rows(self, items: Sequence[dict[str, Any]]) -> np.ndarray:
        """Class probabilities, or regression values on the target's scale."""
        x = rows.features(self.spec.table, items)
        out = self.forward({"x": x})
        if self.spec.task == "regression":
            return rows.outputs(self.spec.table, out)
        return softmax(out)

    def answers(self, out: np.ndarray) -> list[dict[str, Any]]:
        """JSON answers: ``{"value"}`` (regression) or ``{"label", "probabilities"}``."""
        if self.spec.task == "regression":
            return [{"value": float(v)} for v in out]
        names = [self.spec.label(i) for i in range(out.shape[1])]
        return [
            {
                "label": names[int(p.argmax())],
                "probabilities": {n: float(v) for n, v in zip(names, p, strict=True)},
            }
            for p in out
        ]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def onnx_predictor(folder: str | Path, threads: int = 0) -> Predictor:
    """A predictor for an export folder, run by ONNX Runtime on the CPU."""
    ort = need("onnxruntime")

    card = cards.load_card(folder)
    spec = cards.input_spec(folder, card)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(
        str(cards.model_file(folder, card)), options, providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in session.get_inputs()]

    def forward(batch: dict[str, np.ndarray]) -> np.ndarray:
        # One input (images, table rows): whatever its name; text: by name.
        feed = {names[0]: batch["x"]} if "x" in batch else {n: batch[n] for n in names}
        return session.run(None, feed)[0]

    encode = texts.file_encoder(spec.tokenizer_file) if spec.kind == "text" else None
    return Predictor(spec, forward, encode, card)


def need(module: str) -> Any:
    """Import a serving dependency, or say which extra brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"predicting or serving an export needs {module}, which is not installed",
            "pip install 'dl-train[serve]'",
        ) from None
