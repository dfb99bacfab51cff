"""A net as a graph: ``torch.export`` with a dynamic batch (and text length), then ONNX
through torch's dynamo exporter, which converts that same exported program.

A net that cannot be captured or converted stops with one line naming the op and the
layer it sits in (read from the exported program's ``nn_module_stack``), instead of the
exporter's page of advice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dltrain.errors import RunError
from dltrain.export.card import BATCH, InputTensor

TEXT_INPUTS = ("input_ids", "attention_mask")
#: The exporter names an op it has no ONNX function for like this.
_MISSING_OP = re.compile(r"No ONNX function found for <OpOverload\(op='([^']+)'")
_NODE_TARGET = re.compile(r"target=([\w.:]+)")


class TextInputs(nn.Module):
    """Text nets take a dict; a graph takes positional tensors. This wrapper gives the
    net its ``{"input_ids", "attention_mask"}`` from two named inputs."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.net({"input_ids": input_ids, "attention_mask": attention_mask})


@dataclass
class Graph:
    """What to export: the module, example inputs by name, their card description."""

    module: nn.Module
    inputs: dict[str, Tensor]
    tensors: list[InputTensor]
    output: str  # "logits" | "value"

    def args(self) -> tuple[Tensor, ...]:
        return tuple(self.inputs.values())


def graph_of(net: nn.Module, x: Tensor | dict[str, Tensor], output: str) -> Graph:
    """The graph form of ``net`` on batch ``x`` (a tensor, or a text batch's dict)."""
    if isinstance(x, dict):
        inputs = {k: x[k].long() for k in TEXT_INPUTS}
        tensors = [InputTensor(k, "int64", [BATCH, "sequence"]) for k in TEXT_INPUTS]
        return Graph(TextInputs(net).eval(), inputs, tensors, output)
    shape: list[int | str] = [BATCH, *[int(s) for s in x.shape[1:]]]
    return Graph(net.eval(), {"x": x.float()}, [InputTensor("x", "float32", shape)], output)


def export_program(graph: Graph) -> Any:
    """``torch.export.export`` with the batch (and sequence) dimension dynamic."""
    batch = torch.export.Dim("batch")
    dynamic: dict[str, dict[int, Any]] = {}
    for t in graph.tensors:
        dims = {0: batch}
        if "sequence" in t.shape:
            dims[1] = torch.export.Dim.DYNAMIC  # a net may bound it (TextCNN's widest filter)
        dynamic[t.name] = dims
    try:
        return torch.export.export(
            graph.module, graph.args(), dynamic_shapes=dynamic, strict=False
        )
    except Exception as ex:  # noqa: BLE001 - torch.export raises many kinds; one line out
        raise RunError(
            f"cannot capture {_net_name(graph)} as a graph (torch.export): {_first_line(ex)}",
            "make the forward traceable (no data-dependent Python control flow), "
            "or export format=safetensors (weights only)",
        ) from ex


def min_sequence(program: Any) -> int:
    """The shortest sequence the program takes (1 when nothing bounds it)."""
    lows = []
    for node in program.graph.nodes:
        if node.op != "placeholder" or "val" not in node.meta:
            continue
        shape = getattr(node.meta["val"], "shape", ())
        if len(shape) == 2 and isinstance(shape[1], torch.SymInt):
            expr = shape[1].node.expr
            bounds = program.range_constraints.get(expr)
            if bounds is not None:
                lows.append(int(bounds.lower))
    return max([1, *lows])


def to_onnx(graph: Graph, program: Any, path: Path) -> None:
    """Convert ``program`` with the dynamo exporter; write ``path`` (weights inside)."""
    try:
        onnx_program = torch.onnx.export(
            program,
            (),
            dynamo=True,
            input_names=[t.name for t in graph.tensors],
            output_names=[graph.output],
            external_data=False,
            verbose=False,
        )
    except Exception as ex:  # noqa: BLE001 - the exporter's errors become one line
        raise unsupported_op(graph, program, ex) from ex
    onnx_program.save(str(path), external_data=False)


def unsupported_op(graph: Graph, program: Any, ex: BaseException) -> RunError:
    """One line: the op ONNX has no function for, and the layer that calls it."""
    text = _chain_text(ex)
    match = _MISSING_OP.search(text) or _NODE_TARGET.search(text)
    if match is None:
        return RunError(
            f"cannot convert {_net_name(graph)} to ONNX: {_first_line(ex)}",
            "export format=pt2 or format=safetensors instead",
        )
    op = match.group(1).removeprefix("torch.ops.")
    layer = _layer_calling(program, op)
    where = f" in layer {layer}" if layer else ""
    return RunError(
        f"cannot convert {_net_name(graph)} to ONNX: op {op}{where} has no ONNX conversion",
        "replace that op in the net, or export format=pt2 / format=safetensors",
    )


def _layer_calling(program: Any, op: str) -> str:
    """``path (Class)`` of the innermost module whose forward calls ``op``: in the
    program, else in its decomposition (the exporter decomposes before converting, and
    the layer metadata survives it)."""
    found = _layer_in(program, op)
    if found:
        return found
    try:
        return _layer_in(program.run_decompositions(), op)
    except Exception:  # noqa: BLE001 - only a better message is lost
        return ""


def _layer_in(program: Any, op: str) -> str:
    for node in program.graph.nodes:
        if node.op != "call_function" or _op_name(node.target) != _op_name(op):
            continue
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            return ""
        path, cls = list(stack.values())[-1]
        path = re.sub(r"^L\['self'\]\.?", "", str(path)).removeprefix("net.") or "(the net)"
        return f"{path} ({getattr(cls, '__name__', str(cls).rsplit('.', 1)[-1])})"
    return ""


def _op_name(target: Any) -> str:
    """``aten._linalg_eigh`` for the op overload or its text, without the overload."""
    text = str(getattr(target, "_name", target)).replace("::", ".")
    return text.removesuffix(".default").removeprefix("torch.ops.")


def _net_name(graph: Graph) -> str:
    net = graph.module.net if isinstance(graph.module, TextInputs) else graph.module
    return type(net).__name__


def _chain_text(ex: BaseException) -> str:
    parts, seen = [], set()
    cur: BaseException | None = ex
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        parts.append(str(cur))
        cur = cur.__cause__ or cur.__context__
    return "\n".join(parts)


def _first_line(ex: BaseException) -> str:
    lines = [s.strip() for s in str(ex).splitlines() if s.strip()]
    return lines[0] if lines else type(ex).__name__
