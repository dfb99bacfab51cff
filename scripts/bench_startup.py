"""Fixed cost of a run: start-up figures and cost curves, dl-train beside the plain loop.

Two parts, each of whole processes run the way a user runs them, in interleaved rounds
(one round runs every workload once, in an order rotated per round) so that load on a
shared machine hits baselines and dl-train alike; the table shows medians.

``--startup``: ``python -c "import torch"`` (the floor any torch program pays),
``dl-train --help`` and ``dl-train debug=fast`` (digits, one batch per stage), each as a
ratio to ``import torch`` measured in the same rounds; ``debug_eager`` is ``debug=fast``
with ``DLTRAIN_EAGER_IMPORTS=1`` (no deferred imports), to show what deferring saves;
``plain_debug`` is the same one-batch run as a plain PyTorch script
(``scripts/plain_debug.py``), the floor under ``debug_fast``.

``--cost-curves``: wall time of ``experiment=mnist_speed`` and of
``scripts/plain_loop.py experiment=mnist_speed`` at 1, 2, 4 and 8 epochs, each fitted
(least squares on the medians) as fixed cost + per-epoch cost; the table, and
``cost_curves.png`` beside the JSON. With neither option both parts run.

    python scripts/bench_startup.py --data-dir ../shared/datasets          # make bench
    python scripts/bench_startup.py --data-dir ../shared/datasets --cost-curves --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import BIN, PYTHON, Workload, run_once  # noqa: E402 - the bench's own runner

EPOCHS = (1, 2, 4, 8)
SCRIPTS = Path(__file__).resolve().parent


def startup_workloads(log_dir: str) -> list[Workload]:
    dl_train = str(BIN / "dl-train")
    return [
        Workload("import_torch", [PYTHON, "-c", "import torch"]),
        Workload("help", [dl_train, "--help"]),
        # The same one-batch run as a plain PyTorch script: the floor under debug_fast.
        Workload("plain_debug", [PYTHON, str(SCRIPTS / "plain_debug.py"), f"{log_dir}/plain"]),
        Workload(
            "debug_fast", [dl_train, "debug=fast", f"paths.log_dir={log_dir}"], "results_json"
        ),
        # The same without the deferring finder (runtime/lazy_imports.py): what it saves.
        Workload(
            "debug_eager",
            ["env", "DLTRAIN_EAGER_IMPORTS=1", dl_train, "debug=fast", f"paths.log_dir={log_dir}"],
            "results_json",
        ),
    ]


def curve_workloads(data_dir: str, log_dir: str, epochs: list[int]) -> list[Workload]:
    """The pair at each epoch count: the whole recipe but its number of epochs."""
    common = [f"paths.data_dir={data_dir}", f"paths.log_dir={log_dir}"]
    works = []
    for e in epochs:
        recipe = ["experiment=mnist_speed", f"trainer.max_epochs={e}", *common]
        plain = [PYTHON, "scripts/plain_loop.py", *recipe]
        works.append(Workload(f"plain_{e}", plain, "json_line"))
        works.append(Workload(f"dltrain_{e}", [str(BIN / "dl-train"), *recipe], "results_json"))
    return works


def rounds(works: list[Workload], count: int, log_dir: Path) -> None:
    for r in range(count):
        shift = r % len(works)
        for work in works[shift:] + works[:shift]:  # rotated: no workload always first
            work.runs.append(run_once(work, log_dir, 42))
            print(
                f"round {r + 1}/{count} {work.name:14s} {work.runs[-1]['wall_s']:7.2f} s",
                flush=True,
            )


def med(work: Workload, key: str = "wall_s") -> float:
    return statistics.median(run[key] for run in work.runs if run.get(key) is not None)


def startup_table(works: dict[str, Workload]) -> dict[str, Any]:
    torch_s = med(works["import_torch"])
    cpu_torch = med(works["import_torch"], "cpu_s")
    rows = {
        name: {
            "median_s": round(med(w), 3),
            "x_import_torch": round(med(w) / torch_s, 2),
            "runs_s": [r["wall_s"] for r in w.runs],
            # CPU seconds (user + system): on a loaded machine they say more than wall.
            "cpu_s": round(med(w, "cpu_s"), 3),
            "cpu_x_import_torch": round(med(w, "cpu_s") / cpu_torch, 2),
        }
        for name, w in works.items()
    }
    print(
        f"\n{'workload':14s} {'median s':>9s} {'x import torch':>15s} {'cpu s':>7s} {'cpu x':>6s}"
    )
    for name, row in rows.items():
        print(f"{name:14s} {row['median_s']:9.2f} {row['x_import_torch']:15.2f} "
              f"{row['cpu_s']:7.2f} {row['cpu_x_import_torch']:6.2f}")  # fmt: skip
    return rows


def fit(epochs: list[int], walls: list[float]) -> tuple[float, float]:
    """(fixed s, per-epoch s): the least-squares line through (epochs, wall)."""
    per_epoch, fixed = np.polyfit(np.asarray(epochs, float), np.asarray(walls, float), 1)
    return float(fixed), float(per_epoch)


def _accuracy(work: Workload) -> float:
    """The median test accuracy of a workload's runs (each reports its own)."""
    found = [r["acc"] for r in work.runs if r.get("acc") is not None]
    return statistics.median(found) if found else float("nan")


def curve_table(works: dict[str, Workload], epochs: list[int], png: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"epochs": epochs}
    print(f"\n{'epochs':>6s} {'plain s':>9s} {'dl-train s':>11s} {'ratio':>6s} "
          f"{'plain acc':>9s} {'dl-train acc':>12s}")  # fmt: skip
    for e in epochs:
        p, d = med(works[f"plain_{e}"]), med(works[f"dltrain_{e}"])
        accs = [_accuracy(works[f"{side}_{e}"]) for side in ("plain", "dltrain")]
        print(f"{e:6d} {p:9.2f} {d:11.2f} {d / p:6.2f} {accs[0]:9.4f} {accs[1]:12.4f}")
        out[f"acc_{e}"] = {"plain": accs[0], "dltrain": accs[1]}
    for side in ("plain", "dltrain"):
        walls = [med(works[f"{side}_{e}"]) for e in epochs]
        cpus = [med(works[f"{side}_{e}"], "cpu_s") for e in epochs]
        fixed, per_epoch = fit(epochs, walls)
        cpu_fixed, cpu_per_epoch = fit(epochs, cpus)
        out[side] = {"wall_s": [round(w, 3) for w in walls], "fixed_s": round(fixed, 2),
                     "per_epoch_s": round(per_epoch, 2), "cpu_s": [round(c, 3) for c in cpus],
                     "cpu_fixed_s": round(cpu_fixed, 2),
                     "cpu_per_epoch_s": round(cpu_per_epoch, 2)}  # fmt: skip
    for side, label in (("plain", "plain loop"), ("dltrain", "dl-train")):
        c = out[side]
        cpu = f"(cpu: {c['cpu_fixed_s']:6.2f} s + {c['cpu_per_epoch_s']:6.2f} s/epoch)"
        print(f"{label:10s} fixed {c['fixed_s']:6.2f} s + {c['per_epoch_s']:6.2f} s/epoch   {cpu}")
    draw(out, png)
    out["png"] = str(png)
    return out


def draw(curves: dict[str, Any], png: Path) -> None:
    from matplotlib.figure import Figure

    epochs = np.asarray(curves["epochs"], float)
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for side, label in (("plain", "plain loop"), ("dltrain", "dl-train")):
        c = curves[side]
        line = ax.plot(epochs, c["wall_s"], "o", label=f"{label} (medians)")[0]
        xs = np.linspace(0, epochs.max(), 50)
        ax.plot(xs, c["fixed_s"] + c["per_epoch_s"] * xs, "-", color=line.get_color(),
                label=f"{c['fixed_s']:.1f} s + {c['per_epoch_s']:.1f} s/epoch")  # fmt: skip
    ax.set(
        xlabel="epochs", ylabel="wall s (whole process)", title="mnist_speed: cost against epochs"
    )
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="holds MNIST/raw (torchvision layout)")
    parser.add_argument("--startup", action="store_true", help="import torch, --help, debug=fast")
    parser.add_argument("--cost-curves", action="store_true", help="wall time against epochs")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, nargs="+", default=list(EPOCHS))
    parser.add_argument("--out", default="bench_startup.json")
    args = parser.parse_args(argv)
    both = not (args.startup or args.cost_curves)
    data_dir = str(Path(args.data_dir).resolve())
    out = Path(args.out)
    report: dict[str, Any] = {"rounds": args.rounds}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        log_dir = Path(tmp)
        if args.startup or both:
            works = startup_workloads(str(log_dir))
            rounds(works, args.rounds, log_dir)
            report["startup"] = startup_table({w.name: w for w in works})
        if args.cost_curves or both:
            works = curve_workloads(data_dir, str(log_dir), args.epochs)
            rounds(works, args.rounds, log_dir)
            png = out.with_name("cost_curves.png")
            report["cost_curves"] = curve_table({w.name: w for w in works}, args.epochs, png)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
