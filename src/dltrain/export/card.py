"""The export folder ``dl-export`` writes, and its ``card.json``: the contract with
``dl-predict``/``dl-serve`` (``dltrain.serve``), which read it with numpy and ONNX
Runtime alone. Keep it stable: add keys, never rename or change the meaning of one
(``card_version`` goes up if that ever has to happen).

Standard library only: a predictor may import this module without torch.

Folder layout, ``<run dir>/export/<folder>/`` (``<run dir>`` holds ``checkpoints/``):

=============== ========================================================================
folder          files
=============== ========================================================================
``onnx``        ``model.onnx`` (fp32, torch's dynamo exporter, opset 18+, batch dim dynamic)
``onnx-int8``   ``model.onnx`` (``quantize=int8``: ONNX Runtime's dynamic int8 quantizer
                applied to the fp32 graph; same inputs and outputs)
``pt2``         ``model.pt2`` (``torch.export.save``; load with ``torch.export.load``)
``safetensors`` ``model.safetensors`` (the net's ``state_dict``) and ``model.yaml`` (the
                resolved ``model`` config, ``_target_`` included: ``instantiate`` it,
                then ``load_state_dict(safetensors.torch.load_file(...))``)
``booster``     boosted trees: ``model.json`` (XGBoost JSON) or ``model.txt`` (LightGBM
                text), loadable by the booster alone
=============== ========================================================================

Every folder also holds:

- ``card.json``: the fields of ``ExportCard`` below (JSON object, UTF-8);
- ``MODEL_CARD.md``: the same for people;
- ``samples.npz`` (``numpy.load(..., allow_pickle=False)``): a few test-split samples as
  the graph takes them, one array per graph input under that input's name (see
  ``InputTensor.name``), ``expected`` = the checkpoint's fp32 outputs on them
  (``(n, outputs)`` float32: logits, or a regressor's value on the fitted target scale),
  and ``target`` = their true labels (int64) or values (float32);
- ``tokenizer.json`` (text models): a ``tokenizers.Tokenizer`` file
  (``Tokenizer.from_file``), the tokenizer training used.

What the graph takes (``input.tensors``), by ``input.kind``:

- ``image`` / ``sequence``: one float32 tensor ``x`` of shape ``["batch", *input.shape]``,
  already normalised. Normalisation is NOT baked into the graph; it is recorded in
  ``input.normalization`` and a predictor applies it as training did, per channel ``c``:
  ``x = (stored / scale - mean[c]) / std[c]`` where ``stored`` is the value range the
  training data held (``scale`` = 255.0 for 8-bit images: image files give 0..255, so
  divide by 255). Images training stored at ``stored_shape`` (larger: ``data.cache_shape``)
  were center-cropped to ``shape`` for evaluation; resize to ``stored_shape``, then crop.
- ``text``: ``input_ids`` and ``attention_mask``, int64 ``["batch", "sequence"]``: the
  tokenizer's ids truncated to ``max_length`` tokens, right-padded with ``pad_id`` to
  the batch's longest text, at least ``min_length``; the mask is 1 on real tokens, 0 on padding.
- ``table``: one float32 tensor ``x`` ``["batch", width]``: the rows after the fitted
  preprocessing in ``input.preprocessing`` (``TabularState.to_dict()`` of
  ``data/sources/tabular_prep.py`` minus its row keys ``split``: plain JSON). Layout
  ``[numeric columns scaled | missing indicators | categorical codes as floats]``; codes
  0 = unseen level, 1 = missing, 2.. = ``levels[column]`` index + 2.

What it gives (``output``): ``logits`` float32 ``["batch", classes]`` (softmax for
probabilities; ``labels[i]`` names class ``i``), or for a regression ``value`` float32
``["batch", 1]`` on the fitted scale: the prediction is ``value * target_std +
target_mean``, then ``exp(.)`` when ``target_transform == "log"`` (both in
``input.preprocessing``). Boosted trees (``booster`` folder) give ``probabilities``
``["batch", classes]`` (a binary XGBoost's own ``predict`` gives the second column) or
``value`` as above; their ``x`` is the same table matrix.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CARD_VERSION = 1
CARD_FILE = "card.json"
MODEL_CARD_FILE = "MODEL_CARD.md"
SAMPLES_FILE = "samples.npz"
TOKENIZER_FILE = "tokenizer.json"
#: ``format=`` -> (folder, model file). Trees: the file depends on the booster.
FORMATS = {
    "onnx": ("onnx", "model.onnx"),
    "pt2": ("pt2", "model.pt2"),
    "safetensors": ("safetensors", "model.safetensors"),
    "booster": ("booster", ""),
}
INT8_FOLDER = "onnx-int8"
KINDS = ("image", "sequence", "text", "table")
#: The batch dimension's name in shapes (dynamic); texts also have a dynamic "sequence".
BATCH = "batch"


@dataclass
class InputTensor:
    """One graph input: its name (also its key in ``samples.npz``), numpy dtype name
    (``float32``/``int64``), and shape with ``"batch"``/``"sequence"`` for dynamic dims."""

    name: str
    dtype: str
    shape: list[int | str]


@dataclass
class Normalization:
    """Per-channel statistics of the ``[0, 1]``-scaled training inputs (see the module
    docstring); ``baked`` is always False: the predictor applies them."""

    scale: float
    mean: list[float]
    std: list[float]
    baked: bool = False


@dataclass
class InputSpec:
    kind: str  # one of KINDS
    tensors: list[InputTensor]
    # image / sequence: the net's input shape without batch, and the shape stored in
    # training (images: before the evaluation center crop)
    shape: list[int] = field(default_factory=list)
    stored_shape: list[int] = field(default_factory=list)
    normalization: Normalization | None = None
    # text
    tokenizer: str | None = None  # file name in the folder (TOKENIZER_FILE)
    max_length: int = 0
    pad_id: int = 0
    # The shortest sequence the graph takes (a TextCNN's widest filter): pad a batch
    # shorter than this with pad_id (mask 0) up to it; the outputs do not change.
    min_length: int = 1
    text_column: str = "text"
    # table: TabularState.to_dict() without "split"
    preprocessing: dict[str, Any] | None = None


@dataclass
class OutputSpec:
    name: str  # "logits" | "value"
    dtype: str  # "float32"
    shape: list[int | str]


@dataclass
class ExportCard:
    """``card.json``."""

    format: str  # onnx | pt2 | safetensors | xgboost | lightgbm
    model_file: str  # file name inside the folder
    task: str  # classification | regression
    labels: list[str]  # class names by index ([] for regression)
    input: InputSpec
    output: OutputSpec
    net: str  # the net's class (its _target_)
    quantized: str | None = None  # "int8" for the onnx-int8 folder
    # The checkpoint's test metrics as dl-eval scores them ("test/acc", "test/loss"...).
    metrics: dict[str, float] = field(default_factory=dict)
    # This export's own scores on the same test split (int8: its accuracy), same keys.
    export_metrics: dict[str, float] = field(default_factory=dict)
    # Max abs difference of this file's outputs from the checkpoint's on samples.npz.
    parity_max_abs_diff: float | None = None
    samples: str = SAMPLES_FILE
    checkpoint: str = ""
    created: str = ""  # UTC, ISO 8601
    config: dict[str, Any] = field(default_factory=dict)  # the run's config, plain values
    versions: dict[str, str] = field(default_factory=dict)  # torch, onnx, onnxruntime...
    card_version: int = CARD_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, folder: Path) -> Path:
        path = Path(folder) / CARD_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportCard:
        data = dict(data)
        spec = dict(data.pop("input"))
        norm = spec.pop("normalization", None)
        tensors = [InputTensor(**t) for t in spec.pop("tensors")]
        spec_obj = InputSpec(
            tensors=tensors, normalization=Normalization(**norm) if norm else None, **spec
        )
        return cls(input=spec_obj, output=OutputSpec(**data.pop("output")), **data)

    @classmethod
    def read(cls, folder: Path) -> ExportCard:
        return cls.from_dict(json.loads((Path(folder) / CARD_FILE).read_text()))
