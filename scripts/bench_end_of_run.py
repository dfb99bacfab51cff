"""What the end of a run costs, piece by piece: the four PNGs drawn in the run's process
(as before records/plot_worker.py) against handing them to the worker, and one
checkpoint write of the experiment's net and optimizer state (a run writes the best and
``last.ckpt`` at each epoch end).

    python scripts/bench_end_of_run.py --rounds 5 [--experiment mnist_speed]

Interleaved rounds, each measurement in a fresh process (a run's first figure loads
matplotlib's fonts), medians. ``--test-s``: the seconds the test stage is taken to last
between the learning curves (drawn at the fit's end) and the test figures; in the worker
variant the curves are drawn during it. Prints one JSON line.
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

import numpy as np

from dltrain.records import plot_worker, plotting

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ROWS = [{"epoch": e, "train/loss": 1 / (e + 1), "val/loss": 1.1 / (e + 1), "train/acc": 0.9,
         "val/acc": 0.88, "lr-Adam": 1e-3} for e in range(2)]  # fmt: skip


def figures(out: Path, n_test: int) -> list[tuple]:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=n_test).astype(np.float32)
    target = rng.integers(0, 10, n_test)
    cells = rng.integers(0, 100, (10, 10))
    lc, lr, roc, cm = (out / n for n in ("lc.png", "lr.png", "roc.png", "cm.png"))
    curves = [(plotting.learning_curves, lc, ROWS, lc, "t"), (plotting.learning_rate, lr, ROWS, lr)]
    tests = [(plotting.roc_curves, roc, probs, target, roc, None),
             (plotting.confusion_matrix, cm, cells, cm, None)]  # fmt: skip
    return [curves, tests]


def in_process(out: Path, n_test: int, test_s: float) -> float:
    """Seconds the figures add to the run: drawn where they are asked for."""
    import torchmetrics  # noqa: F401 - a run has it (and, through it, pyplot) imported

    curves, tests = figures(out, n_test)
    started = time.perf_counter()
    for draw, _path, *args in curves:
        draw(*args)
    time.sleep(test_s)
    for draw, _path, *args in tests:
        draw(*args)
    return time.perf_counter() - started - test_s


def in_worker(out: Path, n_test: int, test_s: float) -> float:
    """The same with the worker (started at the fit's start, as RunPlots does)."""
    import torchmetrics  # noqa: F401 - as in a run: the forked worker inherits it

    curves, tests = figures(out, n_test)
    plot_worker.start()
    time.sleep(3.0)  # the fit: the worker imports matplotlib meanwhile
    started = time.perf_counter()
    for draw, path, *args in curves:
        plot_worker.submit(draw, path, *args)
    time.sleep(test_s)
    for draw, path, *args in tests:
        plot_worker.submit(draw, path, *args)
    plot_worker.wait_all()
    return time.perf_counter() - started - test_s


def checkpoint_s(experiment: str, out: Path) -> tuple[float, int]:
    """One checkpoint write (net + Adam state) of the experiment's net, and its bytes."""
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}", "paths.output_dir=."])
    net = instantiate(cfg.model)
    opt = torch.optim.Adam(net.parameters())
    x = torch.zeros(2, *cfg.model.in_shape)
    net(x).sum().backward()
    opt.step()
    ckpt = {"state_dict": net.state_dict(), "optimizer_states": [opt.state_dict()]}
    path = out / "x.ckpt"
    started = time.perf_counter()
    torch.save(ckpt, path)
    return time.perf_counter() - started, path.stat().st_size


def one(variant: str, args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        if variant == "ckpt":
            seconds, size = checkpoint_s(args.experiment, Path(tmp))
            print(json.dumps({"bytes": size}), file=sys.stderr)
            return seconds
        run = in_process if variant == "in_process" else in_worker
        return run(Path(tmp), args.n_test, args.test_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--experiment", default="mnist_speed")
    parser.add_argument("--n-test", type=int, default=10_000, help="test samples (ROC input)")
    parser.add_argument("--test-s", type=float, default=2.0)
    parser.add_argument("--one", choices=("in_process", "worker", "ckpt"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # one measurement in this fresh process (first figures load fonts)
        print(one(args.one, args))
        return
    runs: dict[str, list[float]] = {"in_process": [], "worker": [], "ckpt": []}
    for _ in range(args.rounds):
        for variant in runs:
            argv = [sys.executable, __file__, "--one", variant, "--experiment", args.experiment,
                    "--n-test", str(args.n_test), "--test-s", str(args.test_s)]  # fmt: skip
            proc = subprocess.run(argv, capture_output=True, text=True, check=True)
            runs[variant].append(float(proc.stdout.strip().splitlines()[-1]))
    medians = {f"{k}_s": round(statistics.median(v), 3) for k, v in runs.items()}
    print(json.dumps({**medians, "rounds": args.rounds,
                      "runs": {k: [round(x, 3) for x in v] for k, v in runs.items()}}))  # fmt: skip


if __name__ == "__main__":
    main()
