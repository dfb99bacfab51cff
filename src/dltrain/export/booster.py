"""Boosted trees exported in their booster's own format: XGBoost's JSON model, or
LightGBM's text model; each loads with its library alone (no dl-train, no torch)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.export.card import (
    BATCH,
    FORMATS,
    SAMPLES_FILE,
    ExportCard,
    InputSpec,
    InputTensor,
    OutputSpec,
)
from dltrain.export.model_card import write_model_card
from dltrain.export.versions import versions

#: library -> model file written.
FILES = {"xgboost": "model.json", "lightgbm": "model.txt"}


def export_booster(
    booster: Any,
    x_test: np.ndarray,
    y_test: np.ndarray,
    table: dict[str, Any],
    out_root: Path,
    samples: int,
    checkpoint: str = "",
    config: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
) -> Path:
    """Write ``out_root/booster/``: the model file, samples with the trees' own outputs
    (class probabilities, or values on the fitted scale), card and model card."""
    folder = out_root / FORMATS["booster"][0]
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    library = str(booster.library)
    model_file = FILES[library]
    if library == "xgboost":
        booster.model.save_model(str(folder / model_file))  # JSON by the file's suffix
    else:
        (folder / model_file).write_bytes(booster.to_bytes())
    task = str(table.get("task") or "classification")
    x = np.asarray(x_test[:samples], dtype=np.float32)
    expected = np.asarray(booster.predict(x), dtype=np.float32).reshape(len(x), -1)
    preds = np.asarray(booster.predict(np.asarray(x_test, dtype=np.float32)))
    if task == "regression":
        score = {"test/mse": float(((preds.reshape(-1) - y_test.reshape(-1)) ** 2).mean())}
    else:
        score = {"test/acc": float((preds.argmax(-1) == y_test.reshape(-1)).mean())}
    spec = InputSpec(
        kind="table",
        tensors=[InputTensor("x", "float32", [BATCH, int(x.shape[1])])],
        preprocessing={k: v for k, v in table.items() if k != "split"},
    )
    card = ExportCard(
        format=library,
        model_file=model_file,
        task=task,
        labels=[str(c) for c in table.get("classes") or []],
        input=spec,
        output=OutputSpec(
            "value" if task == "regression" else "probabilities",
            "float32",
            [BATCH, int(expected.shape[1])],
        ),
        net=f"{type(booster).__module__}.{type(booster).__qualname__}",
        metrics=dict(metrics or {}),
        export_metrics=score,
        checkpoint=checkpoint,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        config=dict(config or {}),
        versions=versions(library, text=False),
    )
    target = y_test[:samples].astype(np.float32 if task == "regression" else np.int64)
    np.savez(folder / SAMPLES_FILE, x=x, expected=expected, target=target)
    card.write(folder)
    write_model_card(folder, card)
    return folder
