"""A small ONNX export of a dl-train checkpoint for the serving tests, written the way
dl-export lays its folder out (model.onnx + card.json), without depending on dl-export:
the tests of the serving side stay independent of the exporter's own tests."""

from __future__ import annotations

from pathlib import Path

import torch

from dltrain.checkpointing.checkpoint_io import load_checkpoint
from dltrain.checkpointing.run_record import rebuild_net
from dltrain.data.sources.tabular import checkpoint_state
from dltrain.export import card


class _TextNet(torch.nn.Module):
    """ONNX takes named tensors; the text nets take a dict of them."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.net({"input_ids": input_ids, "attention_mask": attention_mask})


def export(ckpt: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = load_checkpoint(ckpt)
    table = checkpoint_state(checkpoint)
    net, run_cfg = rebuild_net(checkpoint, ckpt)
    stats = checkpoint.get("dltrain_data") or {}
    batch = torch.export.Dim("batch", min=1)
    labels = [str(c) for c in stats.get("classes") or []]
    task, output = "classification", card.OutputSpec("logits", "float32", ["batch", "classes"])
    if table is not None:
        table = {k: v for k, v in table.items() if k != "split"}
        width = len(table["numeric"]) + len(table["indicators"]) + len(table["categorical"])
        args: tuple = (torch.zeros(2, width),)
        shapes: tuple = ({0: batch},)
        tensors = [card.InputTensor("x", "float32", ["batch", width])]
        spec = card.InputSpec("table", tensors, preprocessing=table)
        task, labels = table["task"], list(table["classes"])
        if task == "regression":
            output = card.OutputSpec("value", "float32", ["batch", 1])
    elif getattr(net, "takes", None) == "text":
        from hydra.utils import instantiate

        tokenizer = instantiate(run_cfg.data.tokenizer)
        tokenizer.load_state(stats.get("tokenizer", ""))
        tok = getattr(tokenizer, "_tok", None) or tokenizer.tokenizer.backend_tokenizer
        tok.save(str(folder / card.TOKENIZER_FILE))
        net = _TextNet(net)
        ids = torch.ones(2, 8, dtype=torch.long)
        args = (ids, torch.ones_like(ids))
        length = torch.export.Dim("sequence", min=1, max=4096)
        shapes = ({0: batch, 1: length}, {0: batch, 1: length})
        tensors = [card.InputTensor(n, "int64", ["batch", "sequence"])
                   for n in ("input_ids", "attention_mask")]  # fmt: skip
        spec = card.InputSpec("text", tensors, tokenizer=card.TOKENIZER_FILE,
                              max_length=int(stats.get("max_length") or run_cfg.data.max_length),
                              pad_id=int(tokenizer.pad_id))  # fmt: skip
    else:
        shape = [int(s) for s in run_cfg.data.shape]
        args, shapes = (torch.zeros(2, *shape),), ({0: batch},)
        tensors = [card.InputTensor("x", "float32", ["batch", *shape])]
        norm = card.Normalization(255.0, list(stats["mean"]), list(stats["std"]))
        stored = [int(s) for s in run_cfg.data.get("cache_shape") or shape]
        spec = card.InputSpec("image", tensors, shape, stored, norm)
    torch.onnx.export(
        net.eval(), args, str(folder / "model.onnx"), input_names=[t.name for t in tensors],
        dynamic_shapes=shapes, dynamo=True, verbose=False, external_data=False,
    )  # fmt: skip
    card.ExportCard("onnx", "model.onnx", task, labels, spec, output,
                    str(run_cfg.model._target_), checkpoint=str(ckpt)).write(folder)  # fmt: skip
    return folder
