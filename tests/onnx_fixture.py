"""A small ONNX export of a dl-train checkpoint for the serving tests, written the way
dl-export lays its folder out (model.onnx + card.json), without depending on dl-export:
the tests of the serving side stay independent of the exporter's own tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from dltrain.checkpointing.checkpoint_io import load_checkpoint
from dltrain.checkpointing.run_record import rebuild_net
from dltrain.data.sources.tabular import checkpoint_state


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
    card: dict[str, Any] = {"format": "onnx", "model_file": "model.onnx"}
    batch = torch.export.Dim("batch", min=1)
    if table is not None:
        width = len(table["numeric"]) + len(table["indicators"]) + len(table["categorical"])
        args: tuple = (torch.zeros(2, width),)
        names, shapes = ["x"], ({0: batch},)
        card |= {"task": table["task"], "labels": table["classes"],
                 "input": {"kind": "table", "preprocessing": table}}  # fmt: skip
    elif getattr(net, "takes", None) == "text":
        from hydra.utils import instantiate

        tokenizer = instantiate(run_cfg.data.tokenizer)
        tokenizer.load_state(stats.get("tokenizer", ""))
        tok = getattr(tokenizer, "_tok", None) or tokenizer.tokenizer.backend_tokenizer
        tok.save(str(folder / "tokenizer.json"))
        net = _TextNet(net)
        ids = torch.ones(2, 8, dtype=torch.long)
        args = (ids, torch.ones_like(ids))
        names = ["input_ids", "attention_mask"]
        length = torch.export.Dim("length", min=1, max=4096)
        shapes = ({0: batch, 1: length}, {0: batch, 1: length})
        card |= {"task": "classification", "labels": stats.get("classes") or [],
                 "input": {"kind": "text", "tokenizer": "tokenizer.json",
                           "max_length": int(stats.get("max_length") or run_cfg.data.max_length),
                           "pad_id": int(tokenizer.pad_id)}}  # fmt: skip
    else:
        shape = [int(s) for s in run_cfg.data.shape]
        args, names, shapes = (torch.zeros(2, *shape),), ["x"], ({0: batch},)
        card |= {"task": "classification", "labels": stats.get("classes") or [],
                 "input": {"kind": "image", "shape": shape,
                           "stored_shape": list(run_cfg.data.get("cache_shape") or shape),
                           "mean": list(stats["mean"]), "std": list(stats["std"])}}  # fmt: skip
    torch.onnx.export(
        net.eval(), args, str(folder / "model.onnx"), input_names=names,
        dynamic_shapes=shapes, dynamo=True, verbose=False,
    )  # fmt: skip
    (folder / "card.json").write_text(json.dumps(card, indent=2, default=float))
    return folder
