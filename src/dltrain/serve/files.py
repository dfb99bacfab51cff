"""``dl-predict`` on an export folder: image files, text files or a table, predicted with
ONNX Runtime alone, written as the checkpoint path writes them (``predictions.csv`` and
``predictions.json``: the top-k classes per image or text; one row per table row).

The settings are ``configs/predict.yaml``'s, handed over as plain values by the CLI, which
decides on this path before torch could be imported.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.errors import ConfigError, DataError
from dltrain.serve.predictor import Predictor, onnx_predictor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TABLE_SUFFIXES = (".csv", ".tsv")
TEXT_TABLES = (".csv", ".tsv", ".jsonl", ".json")
TEXT_SHOWN = 70


def run(cfg: dict[str, Any]) -> Path:
    """Predict ``cfg["inputs"]``/``cfg["text"]`` with the export at ``cfg["ckpt_path"]``."""
    folder = Path(str(cfg["ckpt_path"]))
    predictor = onnx_predictor(folder)
    out = Path(str(cfg["paths"]["output_dir"]))
    batch = int(cfg.get("batch_size") or 256)
    if int(cfg.get("top_k") or 0) < 1:
        raise ConfigError(f"top_k={cfg.get('top_k')} must be at least 1", "use e.g. top_k=3")
    if predictor.kind == "table":
        return _rows(predictor, cfg, out, batch)
    if predictor.kind == "text":
        column = cfg.get("text_column") or predictor.spec.text_column
        items = _read_texts(_listed(cfg.get("inputs")), str(column)) + [
            str(t) for t in _listed(cfg.get("text"))
        ]
        if not items:
            raise ConfigError("nothing to predict", 'pass text="..." or inputs=<a .txt file>')
        probs = _batched(predictor.texts, items, batch)
    else:
        if cfg.get("text") is not None:
            raise ConfigError(
                "text= was given, but this model classifies images",
                "pass image files or folders with inputs=",
            )
        files = find_images(_listed(cfg.get("inputs")))
        blobs = lambda fs: predictor.images([f.read_bytes() for f in fs], [str(f) for f in fs])  # noqa: E731
        probs = _batched(blobs, files, batch)
        items = [str(f) for f in files]
    names = list(cfg.get("class_names") or []) or predictor.spec.labels or None
    records = top_k(items, probs, int(cfg["top_k"]), names)
    write_predictions(out, records, folder)
    show(records, cut=TEXT_SHOWN if predictor.kind == "text" else None)
    print(f"predictions: {out / 'predictions.csv'}, {out / 'predictions.json'}")
    return out


def _batched(fn: Any, items: list, batch: int) -> np.ndarray:
    return np.concatenate([fn(items[i : i + batch]) for i in range(0, len(items), batch)])


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def find_images(inputs: list[Any]) -> list[Path]:
    """Files given directly, and images found (recursively, sorted) in folders."""
    if not inputs:
        raise ConfigError("nothing to predict", "pass inputs=<image, folder or [a.png,b/]>")
    files: list[Path] = []
    for item in inputs:
        path = Path(str(item))
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(
                    f"no .png/.jpg/.jpeg images in {path}", "point inputs= at image files"
                )
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(
                f"input {path} does not exist", "pass an image file, a folder, or a list [a,b]"
            )
    return files


def _read_texts(inputs: list[Any], column: str) -> list[str]:
    texts: list[str] = []
    for item in inputs:
        path = Path(str(item))
        if not path.is_file():
            raise DataError(
                f"input {path} does not exist or is not a file",
                "pass a .txt file (one text a line), a .csv/.tsv/.jsonl file, or text=...",
            )
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:  # the original rt-polarity files are Latin-1
            text = raw.decode("latin-1")
        suffix = path.suffix.lower()
        if suffix not in TEXT_TABLES:
            texts += [ln for ln in (r.strip() for r in text.splitlines()) if ln]
            continue
        if suffix in (".jsonl", ".json"):
            table = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
        else:
            sep = "\t" if suffix == ".tsv" else ","
            table = list(csv.DictReader(text.splitlines(), delimiter=sep))
        if table and column not in table[0]:
            raise DataError(
                f"{path} has no column '{column}' (columns: {', '.join(table[0])})",
                "name the column that holds the texts with text_column=...",
            )
        texts += [str(r[column]) for r in table]
    return texts


def _rows(predictor: Predictor, cfg: dict[str, Any], out: Path, batch: int) -> Path:
    from dltrain.serve import rows

    inputs = cfg.get("inputs")
    if not isinstance(inputs, str) or Path(inputs).suffix.lower() not in TABLE_SUFFIXES:
        raise ConfigError(
            f"{cfg['ckpt_path']} is a model of table rows, but inputs={inputs} is not a table",
            "pass inputs=<rows.csv> with the feature columns",
        )
    path = Path(inputs)
    if not path.is_file():
        raise DataError(f"table {path} does not exist", "pass inputs=<rows.csv>")
    table = rows.read_csv(path)
    outputs = _batched(predictor.rows, table, batch) if table else np.zeros((0,))
    state = predictor.spec.table
    target = state["target"]
    truth = [r[target] for r in table] if table and target in table[0] else None
    target_cells = [target] if truth is not None else []
    file = out / "predictions.csv"
    out.mkdir(parents=True, exist_ok=True)
    with file.open("w", newline="") as f:
        writer = csv.writer(f)
        if state["task"] == "regression":
            writer.writerow(["row", f"{target}_predicted", *target_cells])
            for i, v in enumerate(outputs):
                writer.writerow([i, f"{v:.6g}", *_cell(truth, i)])
        else:
            classes = state["classes"]
            writer.writerow(
                ["row", f"{target}_predicted", *(f"prob_{c}" for c in classes), *target_cells]
            )
            for i, p in enumerate(outputs):
                shown = [f"{v:.6f}" for v in p]
                writer.writerow([i, classes[int(p.argmax())], *shown, *_cell(truth, i)])
    print(f"{len(table)} rows predicted\npredictions: {file}")
    return file


def top_k(
    items: list[str], probs: np.ndarray, k: int, names: list[str] | None
) -> list[dict[str, Any]]:
    """One record per input: its top ``k`` classes (``commands/predict.top_k``'s layout)."""
    k = min(k, probs.shape[1])
    records = []
    for item, p in zip(items, probs, strict=True):
        order = np.argsort(-p, kind="stable")[:k]
        top = [
            {
                "class": int(i),
                "name": names[i] if names and i < len(names) else str(i),
                "prob": float(p[i]),
            }
            for i in order
        ]
        records.append({"input": item, "top": top})
    return records


def write_predictions(out: Path, records: list[dict[str, Any]], folder: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    payload = {"checkpoint": str(folder), "predictions": records}
    (out / "predictions.json").write_text(json.dumps(payload, indent=2) + "\n")
    with (out / "predictions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["input", "rank", "class", "name", "probability"])
        for rec in records:
            for rank, t in enumerate(rec["top"], start=1):
                writer.writerow([rec["input"], rank, t["class"], t["name"], f"{t['prob']:.6f}"])


def show(records: list[dict[str, Any]], cut: int | None = None) -> None:
    for rec in records:
        shown = "  ".join(f"{t['name']} ({t['prob']:.3f})" for t in rec["top"])
        item = rec["input"]
        if cut is not None and len(item) > cut:
            item = item[: cut - 3] + "..."
        print(f"{item}: {shown}")


def _cell(truth: list[Any] | None, i: int) -> list[Any]:
    return [truth[i]] if truth is not None else []
