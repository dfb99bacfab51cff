"""What a sweep leaves in its directory, and the leaderboard it prints.

``sweep_summary.json`` (every trial), ``best_params.yaml`` and ``best_overrides.txt``
(the best trial as a plain ``dl-train`` command), and PNG plots drawn by
``optuna.visualization.matplotlib``. A study with several objectives has no single best
trial: its summary lists the Pareto front (``pareto_front``: the trials no other trial
beats on every objective) and ``pareto_front.png`` plots it.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Any

from dltrain.records.results import write_json
from dltrain.sweep import space as sp
from dltrain.sweep.quiet import warnings_to_log

log = logging.getLogger(__name__)

TRIAL_KEYS = ("+trial.",)
PLOTS = {
    "optimization_history.png": "plot_optimization_history",
    "param_importances.png": "plot_param_importances",
    "intermediate_values.png": "plot_intermediate_values",
}
SHOWN = 10  # leaderboard rows
#: The reason of a trial Optuna's heartbeat check failed (its worker died).
NO_HEARTBEAT = "interrupted: its sweep process stopped sending heartbeats"


def metric_label(value: Any) -> str:
    """``optimized_metric`` (one name or a list) as text for the summary and table."""
    from omegaconf import ListConfig

    if isinstance(value, (list, tuple, ListConfig)):
        return ", ".join(str(v) for v in value)
    return str(value)


def counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))


def trial_record(trial: Any) -> dict[str, Any]:
    from optuna.trial import TrialState

    took = None
    if trial.datetime_start and trial.datetime_complete:
        took = round((trial.datetime_complete - trial.datetime_start).total_seconds(), 3)
    values = list(trial.values) if trial.values is not None else None
    reason = trial.user_attrs.get("fail_reason")
    if trial.state == TrialState.FAIL and reason is None:
        reason = NO_HEARTBEAT
    return {
        "number": trial.number,
        "state": trial.state.name,
        "value": values[0] if values and len(values) == 1 else None,
        "values": values,
        "params": {k: sp.to_plain(v) for k, v in trial.params.items()},
        # One intermediate value per validation epoch: the epochs this trial trained.
        "epochs": len(trial.intermediate_values),
        "duration_s": took,
        "run_dir": trial.user_attrs.get("run_dir"),
        "reason": reason,
    }


def best_trial(study: Any) -> Any | None:
    if len(study.directions) > 1:
        return None  # several objectives: a Pareto front, no single best
    try:
        return study.best_trial
    except ValueError:  # no trial completed
        return None


def pareto_front(study: Any) -> list[dict[str, Any]] | None:
    """Trials no other completed trial beats on every objective (several only)."""
    if len(study.directions) < 2:
        return None
    front = sorted(study.best_trials, key=lambda t: t.number)
    return [
        {
            "number": t.number,
            "values": list(t.values),
            "params": {k: sp.to_plain(v) for k, v in t.params.items()},
        }
        for t in front
    ]


def write_report(study: Any, sweep_dir: Path, fixed: list[str], metric: str) -> dict[str, Any]:
    """Write the summary, best-trial files and plots; return the summary."""
    from optuna.trial import TrialState

    # WAITING trials are places handed back when n_trials was reached: nothing ran.
    trials = [
        trial_record(t) for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING
    ]
    best = best_trial(study)
    directions = [d.name.lower() for d in study.directions]
    summary = {
        "study_name": study.study_name,
        "direction": directions[0] if len(directions) == 1 else directions,
        "optimized_metric": metric,
        "best_trial": best.number if best else None,
        "best_value": best.value if best else None,
        "pareto_front": pareto_front(study),
        "counts": _counts(trials),
        "trials": trials,
    }
    write_json(sweep_dir / "sweep_summary.json", summary)
    if best is not None:
        _write_best(best, sweep_dir, fixed, summary)
    with warnings_to_log():
        write_plots(study, sweep_dir)
    return summary


def _counts(trials: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in trials:
        out[t["state"]] = out.get(t["state"], 0) + 1
    return out


def best_command(best: Any, fixed: list[str]) -> str:
    """The best trial as a single run: the sweep's fixed overrides plus its parameters."""
    overrides = [*fixed, *sp.to_overrides(best.params)]
    return "dl-train " + " ".join(shlex.quote(o) for o in overrides)


def _write_best(best: Any, sweep_dir: Path, fixed: list[str], summary: dict[str, Any]) -> None:
    from omegaconf import OmegaConf

    params = {k: sp.to_plain(v) for k, v in best.params.items()}
    doc = {
        "study_name": summary["study_name"],
        "optimized_metric": summary["optimized_metric"],
        "direction": summary["direction"],
        "best_trial": best.number,
        "best_value": best.value,
        "best_params": params,
    }
    OmegaConf.save(OmegaConf.create(doc), sweep_dir / "best_params.yaml")
    (sweep_dir / "best_overrides.txt").write_text(best_command(best, fixed) + "\n")


def write_plots(study: Any, sweep_dir: Path) -> list[str]:
    """The PNGs optuna can draw for this study (each is skipped, with a log line, when
    the study cannot support it yet, e.g. importances before two trials complete)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    from dltrain.sweep.quiet import quiet_optuna_warnings

    written = []
    plots = PLOTS if len(study.directions) == 1 else {"pareto_front.png": "plot_pareto_front"}
    for name, fn in plots.items():
        try:
            with quiet_optuna_warnings():
                ax = getattr(ovm, fn)(study)
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.tight_layout()
            fig.savefig(sweep_dir / name, dpi=100)
            written.append(name)
        except (ValueError, RuntimeError, ZeroDivisionError) as ex:
            log.info("plot %s skipped: %s", name, ex)
        finally:
            plt.close("all")
    return written


def print_leaderboard(summary: dict[str, Any], sweep_dir: Path) -> None:
    """The best trials first, then pruned and failed ones, as a rich table."""
    import sys

    from rich.console import Console
    from rich.table import Table

    trials = summary["trials"]
    keys = sorted({k for t in trials for k in t["params"]})
    table = Table(title=f"study {summary['study_name']}: {summary['optimized_metric']}")
    for col in ("#", "trial", "state", "value", "epochs", *keys, "s"):
        table.add_column(col, justify="right" if col not in ("state",) else "left")
    front = {p["number"] for p in summary.get("pareto_front") or []}
    for rank, t in enumerate(_ranked(trials, summary["direction"], front)[:SHOWN], 1):
        values = t.get("values") or ([t["value"]] if t["value"] is not None else [])
        value = " ".join(f"{v:.4f}" for v in values) if values else "-"
        cells = [_cell(t["params"].get(k)) for k in keys]
        took = f"{t['duration_s']:.1f}" if t["duration_s"] is not None else "-"
        table.add_row(
            str(rank), str(t["number"]), t["state"], value, str(t["epochs"]), *cells, took
        )
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    counts = counts_text(summary["counts"])
    if summary.get("pareto_front") is not None:
        numbers = ", ".join(str(n) for n in sorted(front)) or "none"
        console.print(f"{len(trials)} trials ({counts}); Pareto front: trials {numbers}")
    else:
        console.print(f"{len(trials)} trials ({counts}); best trial: {summary['best_trial']}")
    console.print(f"results: {sweep_dir}/sweep_summary.json, best_overrides.txt")


def _ranked(
    trials: list[dict[str, Any]], direction: Any, front: set[int] | None = None
) -> list[dict[str, Any]]:
    """Best first; with several objectives the Pareto front first, by the first one."""
    order = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "FAIL": 3, "WAITING": 4}
    first = direction[0] if isinstance(direction, list) else direction
    sign = -1 if first == "maximize" else 1
    front = front or set()

    def key(t: dict[str, Any]) -> tuple[int, int, float, int]:
        values = t.get("values") or ([t["value"]] if t.get("value") is not None else [])
        v = values[0] if values else None
        state = order.get(t["state"], 5)
        return (state, t["number"] not in front, sign * v if v is not None else 0.0, t["number"])

    return sorted(trials, key=key)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)
