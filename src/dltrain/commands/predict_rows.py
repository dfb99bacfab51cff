"""``dl-predict inputs=rows.csv``: predictions for table rows with a tabular checkpoint.

The checkpoint's fitted preprocessing (medians, scaling, vocabularies, target encoding)
is applied to the rows; the net (or the trees) predicts; ``predictions.csv`` has one
row per input row, in order: the predicted value on the target's own scale
(``target_transform`` undone), or the class and each class's probability. A target
column in the rows is copied next to the prediction; it is not needed.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from dltrain.data.sources import tabular_prep as prep
from dltrain.data.sources.tabular import read_table

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


def is_table(inputs: Any) -> bool:
    return isinstance(inputs, str) and Path(inputs).suffix.lower() in TABLE_SUFFIXES


def run(cfg: DictConfig, checkpoint: dict[str, Any], fitted: dict[str, Any]) -> Path:
    state = prep.TabularState.from_dict(fitted)
    rows = read_table(str(cfg.inputs))
    x = prep.features(state, rows)
    outputs = _predict(checkpoint, x, int(cfg.batch_size))
    out = Path(str(cfg.paths.output_dir)) / "predictions.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    truth = rows[state.target].tolist() if state.target in rows.columns else None
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        if state.task == "regression":
            values = prep.inverse_target(
                outputs * state.target_std + state.target_mean, state.target_transform
            )
            writer.writerow(["row", f"{state.target}_predicted", *_truth_header(state, truth)])
            for i, v in enumerate(values):
                writer.writerow([i, f"{v:.6g}", *_truth_cell(truth, i)])
        else:
            probs_header = [f"prob_{c}" for c in state.classes]
            writer.writerow(
                ["row", f"{state.target}_predicted", *probs_header, *_truth_header(state, truth)]
            )
            for i, p in enumerate(outputs):
                shown = [f"{v:.6f}" for v in p]
                writer.writerow([i, state.classes[int(p.argmax())], *shown, *_truth_cell(truth, i)])
    print(f"{len(rows)} rows predicted\npredictions: {out}")
    return out


def _truth_header(state: prep.TabularState, truth: list | None) -> list[str]:
    return [state.target] if truth is not None else []


def _truth_cell(truth: list | None, i: int) -> list[Any]:
    return [truth[i]] if truth is not None else []


def _predict(checkpoint: dict[str, Any], x: np.ndarray, batch: int) -> np.ndarray:
    """Values ``(N,)`` on the standardised scale, or class probabilities ``(N, C)``."""
    run_cfg = OmegaConf.create(checkpoint["dltrain_config"])
    if "dltrain_booster" in checkpoint:
        from dltrain.trees import recipe

        return recipe.load(run_cfg, checkpoint).predict(x)
    from dltrain.checkpointing.run_record import rebuild_net

    net = rebuild_net(checkpoint, Path("checkpoint"))[0]
    regression = run_cfg.get("task") == "regression"
    parts = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            out = net(torch.from_numpy(x[i : i + batch])).float()
            parts.append(out.reshape(-1) if regression else out.softmax(-1))
    return torch.cat(parts).double().numpy() if parts else np.zeros((0,))
