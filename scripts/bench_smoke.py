"""``dl-smoke`` (every experiment, one process) against its slowest experiment run alone.

Issue 28's target: the whole smoke table costs at most 3x its slowest experiment run
alone. "Alone" is measured two ways, each a fresh process: ``dl-smoke <name>`` (exactly
the smoke run's work for it, one start-up) and ``dl-train experiment=<name> debug=fast
trainer=cpu trainer.devices=1`` (the command a user would type; its evaluation batch is
the experiment's own, where dl-smoke caps it at the training batch). The ratio is taken
against the first, the smaller. Each round runs the smoke table, then each named
experiment alone both ways, interleaved, so machine load hits all alike; the figures
are medians over the rounds.

    python scripts/bench_smoke.py --data-dir ../shared/datasets --rounds 3 \\
        --single rt_polarity_minilm --single cifar10_resnet18
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
SMOKE = ["debug=fast", "trainer=cpu", "trainer.devices=1"]


def timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return time.monotonic() - started, done


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--single", action="append", default=[], help="experiment run alone")
    parser.add_argument("--out", default="bench_smoke.json")
    opts = parser.parse_args()
    data = f"paths.data_dir={Path(opts.data_dir).resolve()}"
    singles = opts.single or ["rt_polarity_minilm"]
    smoke_s: list[float] = []
    alone: dict[str, list[float]] = {name: [] for name in singles}
    alone_train: dict[str, list[float]] = {name: [] for name in singles}
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-smoke-") as tmp:
        for r in range(opts.rounds):
            seconds, done = timed([str(BIN / "dl-smoke"), data], Path(tmp))
            if done.returncode != 0:  # timed all the same: the table says which failed
                print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
            smoke_s.append(seconds)
            rows = done.stdout.splitlines()
            for name in singles:
                seconds, done = timed([str(BIN / "dl-smoke"), name, data], Path(tmp))
                cmd = [str(BIN / "dl-train"), f"experiment={name}", *SMOKE, data]
                train_s, trained = timed([*cmd, f"hydra.run.dir={tmp}/{name}-{r}"], Path(tmp))
                for finished in (done, trained):
                    if finished.returncode != 0:
                        print(finished.stdout[-3000:], finished.stderr[-3000:], file=sys.stderr)
                        return 1
                alone[name].append(seconds)
                alone_train[name].append(train_s)
            each = ", ".join(
                f"{n} {alone[n][-1]:.1f} s (dl-train {alone_train[n][-1]:.1f} s)" for n in singles
            )
            print(f"round {r + 1}: smoke {smoke_s[-1]:.1f} s, alone {each}", flush=True)
    medians = {n: statistics.median(v) for n, v in alone.items()}
    slowest = max(medians, key=medians.__getitem__)
    report = {
        "cpu": cpu_name(),
        "rounds": opts.rounds,
        "smoke_s": smoke_s,
        "smoke_median_s": statistics.median(smoke_s),
        "alone_s": alone,
        "alone_median_s": medians,
        "alone_dl_train_s": alone_train,
        "alone_dl_train_median_s": {n: statistics.median(v) for n, v in alone_train.items()},
        "slowest_alone": slowest,
        "ratio": statistics.median(smoke_s) / medians[slowest],
        "last_smoke_table": rows,
    }
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps(report, indent=2))
    print("\n".join(rows[-18:]))
    print(
        f"dl-smoke median {report['smoke_median_s']:.1f} s; slowest alone: dl-smoke {slowest} "
        f"median {medians[slowest]:.1f} s (dl-train: "
        f"{report['alone_dl_train_median_s'][slowest]:.1f} s); ratio {report['ratio']:.2f}x "
        "(target <= 3x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
