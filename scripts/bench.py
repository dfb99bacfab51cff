"""Speed and memory of dl-train against plain PyTorch loops, side by side.

Every workload is a whole process, run the way a user runs it; the repeats are
interleaved (one round runs each workload once) so that load on the machine hits
baselines and dl-train alike; round r trains every workload with seed 42 + r. Prints a
table of medians (times, memory) and means over seeds (accuracy) with ratios, writes
bench.json.

One seed's test accuracy is a draw: the seed loop's spreads over about a point (sd
0.37 over seeds 42-51), so the seed pair (``seed_loop``, ``seed_mlp``) runs more
rounds than the rest (``--seed-rounds``, default 10) and their accuracies are compared
as means over those seeds, with the standard error of the difference. The per-step
pair (``plain_loop``, ``mnist_speed``) runs as many: one process's conv-net step time
varies by +-15% on the development machine, the plain loop's as much as dl-train's.

    python scripts/bench.py --data-dir ../shared/datasets            # make bench
    python scripts/bench.py --data-dir <tiny MNIST> --smoke          # seconds, for CI

Comparisons (dl-train / baseline):
  seed       scripts/seed_loop.py (torchvision DataLoader loop)  vs  experiment=seed_mlp
  floor      scripts/plain_loop.py experiment=seed_mlp (no framework)  vs  the seed loop
  per-step   scripts/plain_loop.py experiment=mnist_speed (train time)  vs  experiment=mnist_speed
  overhead   the same pair with a linear net (ms per step: what the runner itself costs)
  startup    dl-train --help, dl-train debug=fast
  images     data=image_folder on JPEGs the bench writes: images/s decoded by the first
             pass (into a fresh memory-mapped cache), images/s of a training epoch on
             the cache (dl-train only: there is no baseline row)
  memory     peak RSS of each  vs  python -c 'import lightning'
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PYTHON = sys.executable

#: Overrides that shrink every training workload to a few batches (``--smoke``).
SMOKE_DLTRAIN = ["trainer.max_epochs=1", "trainer.limit_train_batches=2"]
SMOKE_LOOP = ["--epochs", "1", "--limit-batches", "2"]
#: How a Hydra-configured workload takes the round's seed.
SEED = "seed={}"
#: What each run records; the table compares their medians (accuracy: means, MEAN_KEYS).
KEYS = ("wall_s", "cpu_s", "fit_s", "train_s", "step_ms", "acc", "rss_mb", "images_per_s")
#: The ``mnist_speed`` recipe with a linear net (one 784x10 layer): the step's compute is
#: ~0, so ms per step says what the runner itself costs a step, above the machine's noise.
LINEAR = ["experiment=mnist_speed", "model=mlp", "~model.channels", "model.hidden=[]",
          "channels_last=false", "trainer.max_epochs=1"]  # fmt: skip
TRAINED = ("seed_loop", "seed_plain", "seed_mlp", "plain_loop", "mnist_speed", "debug_fast")
#: The workloads that run ``--seed-rounds`` rounds: the seed pair's accuracy comparison
#: needs seeds, the per-step ratio more runs than the machine's noise allows with few.
LONG_PAIRS = ("seed_loop", "seed_mlp", "plain_loop", "mnist_speed")
#: The image folder the image rows read: JPEGs of this size, stored at FOLDER_SHAPE.
FOLDER_IMAGES, FOLDER_SMOKE_IMAGES, FOLDER_SIZE = 3000, 60, 160
FOLDER_SHAPE = "[3,64,64]"
#: Measures summarised by their mean over rounds (over seeds); the rest by the median.
MEAN_KEYS = ("acc",)
#: Table rows: (label, baseline workload, dl-train workload, measure, target, check).
ROWS: list[tuple[str, str | None, str, str, str, Callable[[Any, Any], bool] | None]] = [
    (
        "seed recipe wall s",
        "seed_loop",
        "seed_mlp",
        "wall_s",
        "ratio <= 0.45",
        lambda b, o: o / b <= 0.45,
    ),
    # The floor: the same recipe as a plain loop over in-memory tensors, no framework.
    ("seed recipe wall s, no framework", "seed_loop", "seed_plain", "wall_s", "", None),
    ("seed recipe cpu s", "seed_loop", "seed_mlp", "cpu_s", "", None),
    (
        "seed recipe test acc (mean over seeds)",
        "seed_loop",
        "seed_mlp",
        "acc",
        "|diff| <= 0.003",
        lambda b, o: abs(o - b) <= 0.003,
    ),
    # Per-step cost: seconds inside the training epochs, same batches and steps.
    (
        "speed recipe train s",
        "plain_loop",
        "mnist_speed",
        "train_s",
        "ratio <= 1.10",
        lambda b, o: o / b <= 1.10,
    ),
    # The per-step cost of the runner itself: a net with ~no compute, same batches.
    ("framework ms per step, linear net", "plain_linear", "linear", "step_ms", "", None),
    (
        "speed recipe fit s (+ setup, checkpoints, plots)",
        "plain_loop",
        "mnist_speed",
        "fit_s",
        "",
        None,
    ),
    (
        "speed recipe wall s",
        "plain_loop",
        "mnist_speed",
        "wall_s",
        "dl-train <= 20",
        lambda b, o: o <= 20,
    ),
    (
        "speed recipe test acc (mean over seeds)",
        "plain_loop",
        "mnist_speed",
        "acc",
        "dl-train >= 0.990",
        lambda b, o: o >= 0.99,
    ),
    ("dl-train --help wall s", None, "help", "wall_s", "<= 1.0", lambda b, o: o <= 1.0),
    ("dl-train debug=fast wall s", None, "debug_fast", "wall_s", "<= 10", lambda b, o: o <= 10),
    # Image folders: the first pass decodes into the record cache; later epochs read it.
    ("image folder, first pass: images/s decoded", None, "folder_decode", "images_per_s", "", None),
    (
        "image folder, cached epoch: images/s trained",
        None,
        "folder_cached",
        "images_per_s",
        "",
        None,
    ),
] + [
    ("peak RSS MB", "import_lightning", name, "rss_mb", "diff <= 300", lambda b, o: o - b <= 300)
    for name in TRAINED
]


@dataclass
class Workload:
    """One process to time; ``result`` reads its accuracy and fit time after a run."""

    name: str
    argv: list[str]
    result: str = "none"  # none | json_line | results_json
    runs: list[dict[str, Any]] = field(default_factory=list)

    seed_arg: str = ""  # how the workload takes a seed, e.g. "seed={}"; "" for none
    fresh: Path | None = None  # removed before each run (a cache to build again)

    def command(self, seed: int) -> list[str]:
        """The argv of one round. Training workloads take the round's seed (42, 43, ...):
        one seed's accuracy is a draw, the median over rounds a measurement."""
        return [*self.argv, self.seed_arg.format(seed)] if self.seed_arg else self.argv


def workloads(data_dir: str, log_dir: str, smoke: bool) -> list[Workload]:
    dl_train = str(BIN / "dl-train")
    common = [f"paths.data_dir={data_dir}", f"paths.log_dir={log_dir}"]
    shrink = SMOKE_DLTRAIN if smoke else []
    count = FOLDER_SMOKE_IMAGES if smoke else FOLDER_IMAGES
    images = image_folder(Path(log_dir) / "images", count, FOLDER_SIZE)
    cache = Path(log_dir) / "image_cache"
    folder = [dl_train, "data=image_folder", f"data.root={images}", "data.num_classes=4",
              f"data.shape={FOLDER_SHAPE}", f"data.cache_dir={cache}", "data.batch_size=128",
              "data.val_fraction=0", "model=mlp", "model.hidden=[64]", "trainer.max_epochs=1",
              "test=false", "logger=none", "callbacks=none"]  # fmt: skip
    return [
        Workload(
            "seed_loop",
            [PYTHON, "scripts/seed_loop.py", "--data-dir", data_dir]
            + (SMOKE_LOOP if smoke else []),
            "json_line",
            seed_arg="--seed={}",
        ),
        Workload(
            "seed_plain",
            [PYTHON, "scripts/plain_loop.py", "experiment=seed_mlp", *common]
            + (["trainer.max_epochs=1"] if smoke else []),
            "json_line",
            seed_arg=SEED,
        ),
        Workload(
            "seed_mlp",
            [dl_train, "experiment=seed_mlp", *common, *shrink],
            "results_json",
            seed_arg=SEED,
        ),
        Workload(
            "plain_loop",
            [PYTHON, "scripts/plain_loop.py", "experiment=mnist_speed", *common]
            + (["trainer.max_epochs=1"] if smoke else []),
            "json_line",
            seed_arg=SEED,
        ),
        Workload(
            "mnist_speed",
            [dl_train, "experiment=mnist_speed", *common, *shrink],
            "results_json",
            seed_arg=SEED,
        ),
        Workload(
            "plain_linear",
            [PYTHON, "scripts/plain_loop.py", *LINEAR, *common],
            "json_line",
            seed_arg=SEED,
        ),
        Workload("linear", [dl_train, *LINEAR, *common, *shrink], "results_json", seed_arg=SEED),
        Workload("help", [dl_train, "--help"]),
        Workload(
            "debug_fast",
            [dl_train, "debug=fast", "data=mnist", *common],
            "results_json",
            seed_arg=SEED,
        ),
        Workload("import_lightning", [PYTHON, "-c", "import lightning"]),
        # The decode run removes the cache first; the cached run follows it in each round.
        Workload("folder_decode", [*folder, *common, "trainer.limit_train_batches=1"],
                 "decode_line", fresh=cache),
        Workload("folder_cached", [*folder, *common], "results_json", seed_arg=SEED),
    ]  # fmt: skip


def image_folder(root: Path, count: int, size: int) -> Path:
    """``count`` JPEGs of ``size`` px in 4 class folders: smooth random colour fields
    (upsampled noise), so decoding costs what a photo of that size costs."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
        image.save(folder / f"{i}.jpg", quality=90)
    return root


def run_once(work: Workload, log_dir: Path, seed: int) -> dict[str, Any]:
    """Run the process once: wall time, peak RSS (its own, from wait4) and its results."""
    for old in log_dir.glob("*/runs/*/results.json"):
        old.unlink()  # so that the results read below are this run's
    if work.fresh is not None:
        shutil.rmtree(work.fresh, ignore_errors=True)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        argv = work.command(seed)
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        sys.exit(f"{work.name} failed ({proc.returncode}): {' '.join(argv)}\n{stderr}")
    run: dict[str, Any] = {
        "wall_s": round(wall, 3),
        # CPU seconds too: on a busy machine they say more than wall time does.
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "rss_mb": round(usage.ru_maxrss / 1024, 1),
    }
    if work.result == "json_line":
        line = json.loads(stdout.strip().splitlines()[-1])
        run["acc"] = line.get("test_acc")
        run["fit_s"] = round(line["fit_s"], 3)
        run["train_s"] = round(line["train_s"], 3) if "train_s" in line else None
        steps = line.get("steps")
        run["precision"] = line.get("precision")
    elif work.result == "results_json":
        (path,) = log_dir.glob("*/runs/*/results.json")
        record = json.loads(path.read_text())
        run["acc"] = record["metrics"].get("test/acc")
        run["fit_s"] = record["fit_s"]
        run["train_s"] = record.get("train_s")
        steps = record.get("steps")
        run["precision"] = record.get("precision")
        if record.get("train_samples") and run["train_s"]:  # samples / epoch time
            run["images_per_s"] = round(record["train_samples"] / run["train_s"], 1)
    elif work.result == "decode_line":  # "decoded N images in X s (R images/s, ...)"
        # The rate, not N / X: X is printed to 0.1 s, too coarse for a sub-second pass.
        found = re.search(r"decoded [\d,]+ images in [\d.]+ s \(([\d,]+) images/s", stderr)
        if found is None:
            sys.exit(f"{work.name}: no 'decoded ... images' line in its output\n{stderr}")
        run["images_per_s"] = float(found.group(1).replace(",", ""))
        return run
    else:
        return run
    if run["train_s"] is not None and steps:
        run["steps"] = steps
        run["step_ms"] = round(run["train_s"] / steps * 1000, 4)
    return run


def _values(work: Workload, key: str) -> list[float]:
    return [r[key] for r in work.runs if r.get(key) is not None]


def median(work: Workload, key: str) -> float | None:
    values = _values(work, key)
    return round(statistics.median(values), 4) if values else None


def summary(work: Workload, key: str) -> float | None:
    """What the table compares: the mean over seeds for accuracy, else the median."""
    values = _values(work, key)
    if key in MEAN_KEYS and values:
        return round(statistics.fmean(values), 5)
    return median(work, key)


def diff_stderr(base: Workload, ours: Workload, key: str) -> float | None:
    """Standard error of the difference of two means (independent seeds' draws)."""
    a, b = _values(base, key), _values(ours, key)
    if len(a) < 2 or len(b) < 2:
        return None
    return round((statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5, 5)


def summarize(works: dict[str, Workload]) -> list[dict[str, Any]]:
    """The rows of the table: baseline and dl-train summaries (``summary``), their ratio,
    the target; accuracy rows add the seed count and the standard error of the difference."""
    out = []
    for label, base_name, ours_name, key, target, check in ROWS:
        if ours_name not in works or (base_name and base_name not in works):
            continue  # --only left it out
        base = summary(works[base_name], key) if base_name else None
        ours = summary(works[ours_name], key)
        known = ours is not None and (base is not None or not base_name)
        row = {
            "what": f"{label}: {base_name} | {ours_name}" if base_name else label,
            "baseline": base,
            "ours": ours,
            "ratio": round(ours / base, 3) if base and ours is not None else None,
            "target": target,
            "met": bool(check(base, ours)) if known and check else None,
        }
        if key in MEAN_KEYS and base_name:
            row["seeds"] = len(_values(works[ours_name], key))
            row["diff_stderr"] = diff_stderr(works[base_name], works[ours_name], key)
        out.append(row)
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    def fmt(v: Any) -> str:
        return "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    head = "median of runs (accuracy: mean over seeds)"
    print(f"\n{head:66} {'baseline':>9} {'dl-train':>9} {'ratio':>6}  target")
    for r in rows:
        met = {True: "ok", False: "MISSED", None: ""}[r["met"]]
        spread = ""
        if "seeds" in r:
            spread = f" ({r['seeds']} seeds, se of diff {fmt(r['diff_stderr'])})"
        print(
            f"{r['what']:66} {fmt(r['baseline']):>9} {fmt(r['ours']):>9} {fmt(r['ratio']):>6}"
            f"  {r['target']} {met}{spread}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="holds MNIST/raw (torchvision layout)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="interleaved rounds (default 5: noisy machines)"
    )
    parser.add_argument(
        "--seed-rounds",
        type=int,
        default=10,
        help="rounds (seeds) of the seed and per-step pairs (default 10)",
    )
    parser.add_argument("--out", default="bench.json")
    parser.add_argument("--smoke", action="store_true", help="a few batches each, one round")
    parser.add_argument(
        "--only", default="", help="comma-separated workloads to run (default: all)"
    )
    args = parser.parse_args()
    repeats = 1 if args.smoke else args.repeats
    rounds = repeats if args.smoke else max(repeats, args.seed_rounds)
    data_dir = str(Path(args.data_dir).resolve())
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dltrain-bench-") as tmp:
        log_dir = Path(tmp)
        works = {w.name: w for w in workloads(data_dir, str(log_dir), args.smoke)}
        if args.only:
            works = {n: w for n, w in works.items() if n in args.only.split(",")}
        for round_no in range(rounds):
            for work in works.values():
                if round_no >= repeats and work.name not in LONG_PAIRS:
                    continue
                run = run_once(work, log_dir, seed=42 + round_no)
                work.runs.append(run)
                print(f"round {round_no + 1}/{rounds} {work.name:16} {json.dumps(run)}", flush=True)
    rows = summarize(works)
    total = time.monotonic() - started
    print_table(rows)
    report = {
        "smoke": args.smoke,
        "repeats": repeats,
        "seed_rounds": rounds,
        "data_dir": data_dir,
        "cpus": os.cpu_count(),
        "total_s": round(total, 1),
        "workloads": {
            name: {
                "argv": w.argv,
                "runs": w.runs,
                "median": {k: median(w, k) for k in KEYS},
                "mean_acc": summary(w, "acc"),
            }
            for name, w in works.items()
        },
        "comparisons": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nbench took {total:.0f}s; wrote {args.out}")


if __name__ == "__main__":
    main()
