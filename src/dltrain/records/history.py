"""Per-epoch metric history of a run: ``history.json`` (written by the plots callback),
or the CSV logger's ``csv/metrics.csv`` for runs without it.

A row is ``{"epoch": e, "train/loss": ..., "val/acc": ..., "lr-Adam": ...}``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from dltrain.records.results import write_json

HISTORY_FILE = "history.json"
CSV_FILE = Path("csv") / "metrics.csv"

Row = dict[str, float]


def write_history(run_dir: Path, rows: list[Row]) -> Path:
    path = run_dir / HISTORY_FILE
    write_json(path, {"epochs": rows})
    return path


def read_history(run_dir: Path) -> list[Row]:
    """The run's per-epoch rows, sorted by epoch; empty when it recorded none."""
    path = run_dir / HISTORY_FILE
    if path.is_file():
        try:
            return sorted(json.loads(path.read_text())["epochs"], key=lambda r: r["epoch"])
        except (ValueError, KeyError, TypeError):
            pass  # a damaged file: fall back to the logger's CSV
    return read_metrics_csv(run_dir / CSV_FILE)


def read_metrics_csv(path: Path) -> list[Row]:
    """Lightning's CSVLogger file (one row per log call, blanks elsewhere) merged per epoch."""
    if not path.is_file():
        return []
    by_epoch: dict[int, Row] = {}
    with path.open(newline="") as f:
        for raw in csv.DictReader(f):
            if not raw.get("epoch"):
                continue
            epoch = int(float(raw["epoch"]))
            row = by_epoch.setdefault(epoch, {"epoch": epoch})
            for key, value in raw.items():
                if key in ("epoch", "step") or value in ("", None):
                    continue
                try:
                    row[key] = float(value)
                except ValueError:
                    continue
    return [by_epoch[e] for e in sorted(by_epoch)]


def merge_rows(*sources: list[Row]) -> list[Row]:
    """Union of several histories, later sources filling keys the earlier ones lack."""
    merged: dict[int, Row] = {}
    for rows in sources:
        for row in rows:
            merged.setdefault(int(row["epoch"]), {}).update(
                {k: v for k, v in row.items() if k not in merged.get(int(row["epoch"]), {})}
            )
    return [merged[e] for e in sorted(merged)]
