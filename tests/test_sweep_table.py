"""A search written for classification, run on a regression table, as a user runs it:
the direction follows the metric the trials actually log (``val/rmse_best``), a given
direction that contradicts it is refused before any training, and a trial that fails
in a constructor because of its sampled value does not stop the sweep."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from conftest import run_cli

#: FT-Transformer heads must divide d_token (8): heads=3 fails in the constructor
#: ("embed_dim must be divisible by num_heads"), 2 and 4 train. The grid's seed puts
#: 3 first: trial 0 fails.
HEADS = """\
# @package _global_
defaults:
  - override /data: tabular
  - override /model: ft_transformer
  - override /hydra/sweeper: dltrain_optuna
optimized_metric: val/acc_best
test: false
trainer:
  max_epochs: 1
callbacks:
  plots: null
model:
  d_token: 8
  n_blocks: 1
hydra:
  sweep:
    dir: ${paths.log_dir}/${task_name}/sweeps/${hydra.sweeper.study_name}
    subdir: trial_${trial.number}
  sweeper:
    study_name: heads
    n_trials: 3
    sampler: {name: grid, seed: 5}
    params:
      model.heads: {type: categorical, choices: [3, 2, 4]}
"""


def write_regression_csv(path: Path, rows: int = 300) -> Path:
    """A numeric target of three features: the runner infers regression."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3))
    y = 2 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] + 0.1 * rng.normal(size=rows)
    lines = ["a,b,c,y"] + [",".join(f"{v:.4f}" for v in (*r, t)) for r, t in zip(x, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_classification_search_on_a_regression_table(tmp_path: Path) -> None:
    """Before: exit 2 ("direction is not set and val/acc_best becomes val/rmse_best"),
    with maximize the study maximised RMSE (exit 0), and heads=3 in trial 0 stopped the
    sweep ("every trial would fail the same way", exit 2)."""
    extra = tmp_path / "extra"
    (extra / "hparams_search").mkdir(parents=True)
    (extra / "hparams_search" / "heads.yaml").write_text(HEADS)
    csv = write_regression_csv(tmp_path / "reg.csv")
    args = ["-m", "hparams_search=heads", f"hydra.searchpath=[file://{extra}]"]
    args += [f"data.path={csv}", "data.target=y"]
    out = run_cli(args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    sweep = tmp_path / "outputs" / "train" / "sweeps" / "heads"
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert (summary["direction"], summary["optimized_metric"]) == ("minimize", "val/rmse_best")
    trials = {t["number"]: t for t in summary["trials"]}
    assert [(n, t["params"]["model.heads"], t["state"]) for n, t in sorted(trials.items())] == [
        (0, 3, "FAIL"),
        (1, 2, "COMPLETE"),
        (2, 4, "COMPLETE"),
    ]
    assert trials[0]["reason"] == (
        "invalid configuration: embed_dim must be divisible by num_heads — check the "
        "overrides (see dl-train --help)"
    )
    logged = {}
    for n in (1, 2):
        results = json.loads((Path(trials[n]["run_dir"]) / "results.json").read_text())
        logged[n] = results["metrics"]["val/rmse_best"]
        assert trials[n]["value"] == logged[n]
    assert logged[1] != logged[2]
    assert summary["best_trial"] == min(logged, key=logged.get)
    assert "study heads: val/rmse_best" in out.stdout  # the leaderboard's header

    # A given direction that contradicts the metric the run logs: one line, no trial.
    out = run_cli(
        [*args, "hydra.sweeper.direction=maximize", "hydra.sweeper.study_name=up"], cwd=tmp_path
    )
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr.strip().splitlines() == [
        "error: hydra.sweeper.direction=maximize contradicts optimized_metric "
        "'val/rmse_best', where lower is better; the target is numeric, so val/acc_best is "
        "val/rmse_best — set hydra.sweeper.direction=minimize, or leave it out (it follows "
        "the metric), or task=classification"
    ]
    assert not list((sweep.parent / "up").glob("trial_*"))
