"""Step time of a ``trainer=ddp_cpu`` epoch (2 gloo processes), for one or more source trees.

Measures what the per-step cross-rank decisions (signals, ``nan_policy=skip``) cost:
each round runs every tree once (interleaved, so load on the machine hits all alike),
and the median of ``train_s / steps`` over the rounds is printed per tree. A tree is a
checkout's ``src`` folder put first on ``PYTHONPATH`` (e.g. an older commit from
``git worktree add /tmp/old <commit>``); ``.`` is this checkout.

    python scripts/bench_ddp_step.py --rounds 5 --tree . --tree /tmp/old
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
RUN = ["trainer=ddp_cpu", "data=synthetic", "data.shape=[1,4,4]", "data.num_classes=3",
       "data.num_train=4800", "data.num_test=16", "data.val_fraction=0", "data.batch_size=8",
       "model.hidden=[16]", "logger=none", "trainer.max_epochs=1", "test=false",
       "nan_policy=skip"]  # fmt: skip


def step_ms(tree: Path, work: Path) -> float:
    """One epoch of 300 steps per rank; the module's training seconds per step, in ms."""
    run_dir = Path(tempfile.mkdtemp(dir=work))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tree.resolve() / "src")}
    subprocess.run([str(BIN / "dl-train"), *RUN, f"hydra.run.dir={run_dir}"], cwd=tree,
                   env=env, check=True, capture_output=True, timeout=600)  # fmt: skip
    record = json.loads((run_dir / "results.json").read_text())
    return 1000 * record["train_s"] / record["steps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    times: dict[Path, list[float]] = {t: [] for t in args.tree}
    with tempfile.TemporaryDirectory() as work:
        for _ in range(args.rounds):
            for tree in args.tree:
                times[tree].append(step_ms(tree, Path(work)))
    for tree, values in times.items():
        shown = ", ".join(f"{v:.3f}" for v in values)
        print(f"{tree}: median {statistics.median(values):.3f} ms/step ({shown})")


if __name__ == "__main__":
    main()
