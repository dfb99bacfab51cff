"""``dl-report``: a table of runs (single runs, multiruns, sweeps), ``report.md`` and a
PNG comparing their learning curves.

Reads only what runs leave on disk (``results.json``, ``.hydra/overrides.yaml``,
``history.json`` or ``csv/metrics.csv``, and a sweep's ``sweep_summary.json``), so it
imports neither torch nor Lightning and answers in about a second.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dltrain.errors import ConfigError
from dltrain.records.history import read_history

SWEEP_FILE = "sweep_summary.json"
#: Metrics shown when --metrics is not given (those that any run has).
# Classification and regression columns: a table shows those its runs have, so trees
# and nets on the same table line up (same names in both results.json).
DEFAULT_METRICS = (
    "val/acc_best", "val/loss", "test/acc", "test/auroc", "test/loss",
    "val/rmse_best", "test/rmse", "test/r2",
)  # fmt: skip
#: Overrides that say where, not what: left out of the table.
WHERE_KEYS = ("paths.", "hydra.", "ckpt_path", "task_name", "trial.")


@dataclass
class Run:
    """One run directory (or a sweep trial that left none) as the report sees it."""

    path: Path | None
    status: str
    overrides: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    wall_s: float | None = None
    trial: int | None = None
    label: str = ""


# ---- finding runs ----------------------------------------------------------------------
def is_run_dir(path: Path) -> bool:
    """A dl-train (or dl-eval) run: its record, or at least its config (still running,
    or killed). dl-predict's directories are not runs."""
    if (path / "predictions.json").is_file():
        return False
    return (path / "results.json").is_file() or (path / ".hydra" / "overrides.yaml").is_file()


def find_runs(paths: Sequence[Path]) -> list[Run]:
    """Every run under the given paths; trials of sweeps found there are joined with
    their run directories (their state comes from the sweep summary)."""
    run_dirs: dict[Path, None] = {}
    sweeps: list[Path] = []
    for root in paths:
        if not root.exists():
            raise ConfigError(f"{root} does not exist", "pass run, multirun or sweep directories")
        if root.is_file():
            root = root.parent
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "wandb")))
            if SWEEP_FILE in filenames:
                sweeps.append(here)
            if is_run_dir(here):
                run_dirs[here.resolve()] = None
                dirnames[:] = []  # nothing of interest inside a run
    runs = {path: load_run(path) for path in run_dirs}
    for sweep in sweeps:
        for trial in read_sweep(sweep):
            run_dir = trial.get("run_dir")
            key = Path(run_dir).resolve() if run_dir else None
            run = runs.get(key) if key else None
            if run is None:
                run = Run(path=key, status="missing")
                runs[key or Path(f"{sweep}#trial{trial.get('number')}")] = run
            _apply_trial(run, trial)
    return list(runs.values())


def read_sweep(sweep_dir: Path) -> list[dict[str, Any]]:
    data = json.loads((sweep_dir / SWEEP_FILE).read_text())
    trials = data.get("trials", []) if isinstance(data, dict) else data
    return [t for t in trials if isinstance(t, dict)]


def _apply_trial(run: Run, trial: dict[str, Any]) -> None:
    run.trial = trial.get("number")
    state = str(trial.get("state") or "").lower()
    if state:
        run.status = {"complete": "completed", "fail": "failed"}.get(state, state)
    if not run.overrides:
        run.overrides = [shorten(f"{k}={v}") for k, v in (trial.get("params") or {}).items()]
    if run.wall_s is None:
        run.wall_s = trial.get("duration_s", trial.get("duration"))


def load_run(path: Path) -> Run:
    results: dict[str, Any] = {}
    if (path / "results.json").is_file():
        try:
            results = json.loads((path / "results.json").read_text())
        except ValueError:
            results = {"status": "unreadable"}
    overrides: list[str] = []
    if (path / ".hydra" / "overrides.yaml").is_file():
        overrides = [
            str(o) for o in yaml.safe_load((path / ".hydra/overrides.yaml").read_text()) or []
        ]
    metrics = {k: float(v) for k, v in (results.get("metrics") or {}).items()}
    if not metrics:  # pruned, failed or still running: its last recorded epoch
        history = read_history(path)
        metrics = {k: v for k, v in history[-1].items() if "/" in k} if history else {}
    return Run(
        path=path,
        status=str(results.get("status", "running or killed")),
        overrides=[shorten(o) for o in overrides if not o.lstrip("+~").startswith(WHERE_KEYS)],
        metrics=metrics,
        wall_s=results.get("wall_s"),
    )


def shorten(override: str) -> str:
    """``optimizer.lr=0.004304762819776759`` -> ``optimizer.lr=0.004305`` for the table."""
    key, sep, value = override.partition("=")
    try:
        number = float(value)
    except ValueError:
        return override
    return f"{key}={number:.4g}" if sep and "." in value and len(value) > 8 else override


# ---- the table -----------------------------------------------------------------------------
def varying_overrides(runs: Sequence[Run]) -> dict[int, str]:
    """Per run, the overrides that are not shared by all the runs (all of them for one)."""
    common = set.intersection(*(set(r.overrides) for r in runs)) if len(runs) > 1 else set()
    return {id(r): " ".join(o for o in r.overrides if o not in common) for r in runs}


def sort_runs(runs: list[Run], metric: str | None, ascending: bool | None) -> list[Run]:
    """By ``metric`` (losses ascending, others descending unless told); runs without
    it last. Without a metric: by path, which is by time for dl-train's run dirs."""
    if not metric:
        return sorted(runs, key=lambda r: (str(r.path), r.trial or 0))
    if ascending is None:
        from dltrain.config.task import metric_mode

        ascending = metric_mode(metric) == "min" or "loss" in metric
    have = [r for r in runs if metric in r.metrics]
    rest = [r for r in runs if metric not in r.metrics]
    have.sort(key=lambda r: r.metrics[metric], reverse=not ascending)
    return have + rest


def label_runs(runs: Sequence[Run], roots: Sequence[Path]) -> None:
    """Short labels: the path below the given directory (``multiruns/<time>/3``)."""
    bases = [r.resolve() for r in roots]
    for run in runs:
        if run.path is None:
            run.label = f"trial {run.trial}"
            continue
        label = str(run.path)
        for base in bases:
            if run.path == base:
                label = run.path.name
                break
            if run.path.is_relative_to(base):
                label = str(run.path.relative_to(base))
                break
        run.label = label


def metric_columns(runs: Sequence[Run], asked: Sequence[str] | None, sort: str | None) -> list[str]:
    if asked:
        cols = list(asked)
    else:
        present = {k for r in runs for k in r.metrics}
        cols = [m for m in DEFAULT_METRICS if m in present]
    if sort and sort not in cols:
        cols.insert(0, sort)
    return cols


def table_rows(runs: Sequence[Run], metrics: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    changed = varying_overrides(runs) if runs else {}
    has_trials = any(r.trial is not None for r in runs)
    header = ["run", *(["trial"] if has_trials else []), "status", "overrides", *metrics, "wall"]
    rows = []
    for run in runs:
        cells = [run.label]
        if has_trials:
            cells.append("" if run.trial is None else str(run.trial))
        cells += [run.status, changed.get(id(run), "")]
        cells += [f"{run.metrics[m]:.4f}" if m in run.metrics else "-" for m in metrics]
        cells.append(f"{run.wall_s:.1f}s" if isinstance(run.wall_s, (int, float)) else "-")
        rows.append(cells)
    return header, rows


def print_table(header: list[str], rows: list[list[str]], title: str) -> None:
    from rich.table import Table

    from dltrain.records.terminal import print_trimmed

    table = Table(title=title, title_justify="left")
    for name in header:
        numeric = name not in ("run", "status", "overrides")
        table.add_column(
            name,
            justify="right" if numeric else "left",
            no_wrap=name != "overrides",
            overflow="fold",
        )
    for row in rows:
        table.add_row(*row)
    print_trimmed(table, log_width=250)  # a log file or pipe: no reason to wrap at 80


def markdown(header: list[str], rows: list[list[str]], title: str, image: str | None) -> str:
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    if image:
        lines += ["", f"![learning curves of the runs above]({image})"]
    return "\n".join(lines) + "\n"


# ---- the command ---------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="dl-report",
        description="Table of runs (status, overrides, metrics, wall time), report.md and a "
        "PNG comparing their learning curves. Works on run, multirun and sweep directories.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        default=[Path("outputs")],
        help="run, multirun or sweep directories, or outputs/ (default)",
    )
    parser.add_argument("--sort", metavar="METRIC", help="sort by this metric, e.g. val/acc_best")
    order = parser.add_mutually_exclusive_group()
    order.add_argument(
        "--asc",
        dest="ascending",
        action="store_true",
        default=None,
        help="ascending (default for losses)",
    )
    order.add_argument(
        "--desc",
        dest="ascending",
        action="store_false",
        help="descending (default for other metrics)",
    )
    parser.add_argument(
        "--metrics",
        help="comma-separated metric columns "
        f"(default: those of {', '.join(DEFAULT_METRICS)} the runs have)",
    )
    parser.add_argument(
        "--top",
        type=int,
        default=10,
        help="runs drawn in the curves PNG (the first N of the table)",
    )
    parser.add_argument(
        "--curves",
        default="val/loss,val/acc",
        help="metrics drawn per epoch (default: val/loss,val/acc)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for report.md and report_curves.png "
        "(default: the directory given, or the current one for several)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from dltrain.records import plotting

    args = parse_args(argv)
    runs = find_runs(args.paths)
    if not runs:
        raise ConfigError(
            f"no runs found under {', '.join(map(str, args.paths))}",
            "pass directories that dl-train wrote (they hold results.json or .hydra/)",
        )
    label_runs(runs, args.paths)
    runs = sort_runs(runs, args.sort, args.ascending)
    metrics = metric_columns(runs, args.metrics.split(",") if args.metrics else None, args.sort)
    header, rows = table_rows(runs, metrics)
    title = f"{len(runs)} runs" + (f", sorted by {args.sort}" if args.sort else "")
    print_table(header, rows, title)

    out = args.out or (args.paths[0] if len(args.paths) == 1 else Path("."))
    if out.is_file():
        out = out.parent
    out.mkdir(parents=True, exist_ok=True)
    histories = {r.label: read_history(r.path) for r in runs[: args.top] if r.path}
    histories = {k: v for k, v in histories.items() if v}
    image = None
    if histories:
        curves = [c for c in args.curves.split(",") if c]
        path = plotting.compare_runs(histories, out / "report_curves.png", metrics=curves)
        image = path.name
    report = out / "report.md"
    report.write_text(markdown(header, rows, title, image))
    print(f"report: {report}" + (f", {out / image}" if image else ""))
    return 0
