"""Running and quantizing an exported ONNX model with ONNX Runtime: what checks the
export (parity on the samples, accuracy on the test split) and ``quantize=int8``."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.errors import ConfigError

#: Ops the dynamic quantizer turns into int8: the weight matmuls (Linear layers,
#: attention projections, recurrent cells) and embeddings. Convolutions stay fp32:
#: ONNX Runtime's ConvInteger is slower on CPU than the fp32 Conv it replaces.
INT8_OPS = ["MatMul", "Gemm", "Gather", "LSTM", "GRU", "Attention"]


def session(path: Path, threads: int = 0) -> Any:
    """A CPU inference session (``threads=0``: ONNX Runtime's choice)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: not its notes on graph optimisation
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run(sess: Any, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The first output for ``inputs`` (by graph input name)."""
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, {k: inputs[k] for k in names})[0]


def quantize_int8(source: Path, target: Path) -> None:
    """ONNX Runtime's dynamic quantization: int8 weights, activations quantized per
    batch at run time (no calibration data needed)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as ex:  # pragma: no cover - onnxruntime is in the export extra
        raise ConfigError(
            "quantize=int8 needs onnxruntime", "pip install 'dl-train[export]'"
        ) from ex
    # ONNX Runtime's documented first step: shape inference and graph optimisation, so
    # the quantizer sees every MatMul with known shapes (it warns without it).
    prepared = target.with_name(target.stem + ".prepared.onnx").absolute()
    try:
        with _in_scratch_folder(target.parent):
            quant_pre_process(str(source.absolute()), str(prepared))
    except Exception:  # noqa: BLE001 - quantizing the unprepared graph still works
        shutil.copyfile(source, prepared)
    try:
        _quantize(prepared, target, QuantType, quantize_dynamic)
    finally:
        prepared.unlink(missing_ok=True)


@contextlib.contextmanager
def _in_scratch_folder(beside: Path) -> Iterator[None]:
    """Run in a temporary folder (next to ``beside``), removed afterwards: ONNX Runtime's
    symbolic shape inference saves ``sym_shape_infer_temp.onnx`` and its external-data
    file into the working directory, and would leave them in the user's."""
    back = os.getcwd()
    with tempfile.TemporaryDirectory(dir=beside, prefix=".quantize-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(back)


def _quantize(source: Path, target: Path, QuantType: Any, quantize_dynamic: Any) -> None:  # noqa: N803
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=INT8_OPS,
        per_channel=True,
        extra_options={"MatMulConstBOnly": True},
    )


def score(
    predict: Any, batches: Iterable[tuple[dict[str, np.ndarray], np.ndarray]], task: str
) -> dict[str, float]:
    """``test/acc`` (classification) or ``test/mse`` on the fitted target scale
    (regression) of ``predict(inputs) -> outputs`` over ``batches``."""
    right = total = 0
    squared = 0.0
    for inputs, y in batches:
        out = np.asarray(predict(inputs))
        if task == "regression":
            squared += float(((out.reshape(-1) - y.reshape(-1).astype(np.float64)) ** 2).sum())
        else:
            right += int((out.argmax(-1) == y.reshape(-1)).sum())
        total += len(y)
    if total == 0:
        return {}
    if task == "regression":
        return {"test/mse": squared / total}
    return {"test/acc": right / total}
