"""``dl-serve`` on a checkpoint: the serving predictor with a torch forward.

Inputs are prepared by the same numpy code as an export folder's (``serve/images.py``,
``serve/texts.py``, ``serve/rows.py``), from what the checkpoint stores (the statistics,
the tokenizer's state, the fitted table preprocessing); only the forward differs.
Boosted trees are not served here (their checkpoints hold a booster, not a net).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from dltrain.checkpointing.checkpoint_io import load_checkpoint
from dltrain.checkpointing.run_record import rebuild_net
from dltrain.data.sources.tabular import checkpoint_state
from dltrain.errors import ConfigError
from dltrain.serve.card import InputSpec
from dltrain.serve.predictor import Predictor


def predictor(ckpt_path: Path, threads: int = 0) -> Predictor:
    if threads > 0:
        torch.set_num_threads(threads)
    checkpoint = load_checkpoint(ckpt_path)
    if "dltrain_booster" in checkpoint:
        raise ConfigError(
            f"{ckpt_path} holds boosted trees, which dl-serve does not serve",
            "predict its rows with dl-predict ckpt_path=... inputs=rows.csv",
        )
    table = checkpoint_state(checkpoint)
    net, run_cfg = rebuild_net(checkpoint, ckpt_path)
    stats: dict[str, Any] = checkpoint.get("dltrain_data") or {}
    encode = None
    if table is not None:
        spec = InputSpec("table", task=table["task"], labels=list(table["classes"]), table=table)
    elif getattr(net, "takes", None) == "text":
        from hydra.utils import instantiate

        tokenizer = instantiate(run_cfg.data.tokenizer)
        tokenizer.load_state(stats.get("tokenizer", ""))
        max_length = int(stats.get("max_length") or run_cfg.data.max_length)
        spec = InputSpec("text", labels=list(stats.get("classes") or []), max_length=max_length,
                         pad_id=int(tokenizer.pad_id))  # fmt: skip
        encode = tokenizer.encode
    else:
        shape = [int(s) for s in run_cfg.data.shape]
        stored = [int(s) for s in run_cfg.data.get("cache_shape") or shape]
        spec = InputSpec("image", labels=list(stats.get("classes") or []), shape=shape,
                         stored_shape=stored, mean=list(stats["mean"]),
                         std=list(stats["std"]))  # fmt: skip
    regression = spec.task == "regression"

    def forward(batch: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            if "x" in batch:
                out = net(torch.from_numpy(batch["x"]))
            else:
                out = net({k: torch.from_numpy(v) for k, v in batch.items()})
        out = out.float()
        return (out.reshape(-1) if regression else out).numpy()

    card = {"format": "checkpoint", "runtime": "torch", "checkpoint": str(ckpt_path),
            "task": spec.task, "labels": spec.labels, "input": {"kind": spec.kind}}  # fmt: skip
    return Predictor(spec, forward, encode, card)
