"""Benchmark: what pruning saves on an MNIST study.

Runs ``hparams_search=mnist_optuna`` (reduced to fit a CPU: the MLP instead of the CNN,
fewer trials and epochs, part of each training epoch) twice per sampler seed: with the
study's pruner (median) and with ``hydra.sweeper.pruner=none``; same seed, same trial
count. Reports, per arm, the epochs trained over all trials, the best value, the pruned
trials and the wall time (medians over seeds), and writes the raw figures to a JSON file.

    .venv/bin/python scripts/bench_pruning.py --data-dir ../shared/datasets --seeds 42 43 44
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ARMS = {"median": [], "none": ["hydra.sweeper.pruner=none"]}


def run_arm(arm: str, seed: int, args: argparse.Namespace, workdir: Path) -> dict:
    study = f"bench_{arm}_s{seed}"
    cmd = [
        str(BIN / "dl-train"),
        "-m",
        "hparams_search=mnist_optuna",
        f"paths.data_dir={Path(args.data_dir).resolve()}",
        f"hydra.sweeper.study_name={study}",
        f"hydra.sweeper.n_trials={args.trials}",
        f"hydra.sweeper.sampler.seed={seed}",
        f"trainer.max_epochs={args.epochs}",
        f"model={args.model}",
        f"trainer.limit_train_batches={args.limit_train}",
        "test=false",
        *ARMS[arm],
    ]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{arm} (seed {seed}) failed:\n{done.stderr[-3000:]}")
    summary_path = workdir / "outputs" / "train" / "sweeps" / study / "sweep_summary.json"
    summary = json.loads(summary_path.read_text())
    trials = summary["trials"]
    return {
        "arm": arm,
        "seed": seed,
        "trials": len(trials),
        "epochs": sum(t["epochs"] for t in trials),
        "pruned": sum(t["state"] == "PRUNED" for t in trials),
        "best_value": summary["best_value"],
        "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--limit-train", type=float, default=0.25)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--out", default="bench_pruning.json")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for arm in ARMS:
                row = run_arm(arm, seed, args, Path(tmp))
                print(json.dumps(row), flush=True)
                rows.append(row)

    print(
        f"\nmnist_optuna reduced: model={args.model}, {args.trials} trials x <= "
        f"{args.epochs} epochs, {args.limit_train:.0%} of training batches, "
        f"seeds {args.seeds} (medians)"
    )
    header = ("pruner", "epochs trained", "pruned", "best val/acc_best", "wall s")
    print("{:<8} {:>15} {:>7} {:>18} {:>8}".format(*header))
    for arm in ARMS:
        mine = [r for r in rows if r["arm"] == arm]
        med = {
            k: statistics.median(r[k] for r in mine)
            for k in ("epochs", "pruned", "best_value", "wall_s")
        }
        cells = (arm, med["epochs"], med["pruned"], med["best_value"], med["wall_s"])
        print("{:<8} {:>15g} {:>7g} {:>18.4f} {:>8.1f}".format(*cells))
    Path(args.out).write_text(json.dumps({"args": vars(args), "runs": rows}, indent=2) + "\n")
    print(f"raw figures: {args.out}")


if __name__ == "__main__":
    main()
