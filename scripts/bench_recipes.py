"""Test accuracy of the text recipes on rt-polarity, seed by seed: distillation and LoRA.

- ``distill``: per seed, a teacher (``experiment=rt_polarity_textcnn`` made wider: the
  same word-level tokenizer, fitted on the same split, which ``module=distill`` requires),
  the plain TextCNN, and the TextCNN distilled from that teacher
  (``experiment=rt_polarity_textcnn_distilled``). Every run is a real ``dl-train``
  process; the accuracies are each run's ``results.json`` ``test/acc``.
- ``lora``: ``experiment=rt_polarity_minilm`` (full fine-tune) and
  ``experiment=rt_polarity_minilm_lora``, with their trainable-parameter counts and
  checkpoint sizes.

Runs whose directory already holds a ``results.json`` are read, not run again, so an
interrupted invocation continues where it stopped.

    python scripts/bench_recipes.py distill --seeds 42 43 44 --out outputs/bench_recipes
    python scripts/bench_recipes.py lora --seeds 42 --out outputs/bench_recipes
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
#: The teacher: the recipe's TextCNN, three times wider in its embeddings and filters.
TEACHER = ["experiment=rt_polarity_textcnn", "model.embed_dim=300", "model.channels=300"]


def train(run_dir: Path, args: list[str], data_dir: str, threads: int) -> dict:
    """``dl-train args`` into ``run_dir`` (or its results if it already finished)."""
    results = run_dir / "results.json"
    if not results.exists():
        cmd = [str(BIN / "dl-train"), *args, f"paths.data_dir={data_dir}",
               f"threads={threads}", f"hydra.run.dir={run_dir}"]  # fmt: skip
        print(" ".join(cmd[1:]), flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"error: {run_dir.name} failed:\n{done.stderr[-3000:]}")
    return json.loads(results.read_text())


def accuracy(results: dict) -> float:
    return 100 * results["metrics"]["test/acc"]


def summary(name: str, values: list[float]) -> str:
    spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    listed = ", ".join(f"{v:.2f}" for v in values)
    return f"{name:<22} {statistics.mean(values):6.2f}{spread}  ({listed})"


def distill(opts: argparse.Namespace) -> list[str]:
    plain, distilled, teachers = [], [], []
    for seed in opts.seeds:
        base, seeded = opts.out / f"seed{seed}", f"seed={seed}"
        teacher = train(base / "teacher", [*TEACHER, seeded], opts.data_dir, opts.threads)
        teachers.append(accuracy(teacher))
        args = ["experiment=rt_polarity_textcnn", seeded]
        plain.append(accuracy(train(base / "plain", args, opts.data_dir, opts.threads)))
        args = ["experiment=rt_polarity_textcnn_distilled", seeded,
                f"teacher={teacher['best_checkpoint']}"]  # fmt: skip
        distilled.append(accuracy(train(base / "distilled", args, opts.data_dir, opts.threads)))
    return [
        summary("teacher (wide TextCNN)", teachers),
        summary("plain TextCNN", plain),
        summary("distilled TextCNN", distilled),
    ]


def lora(opts: argparse.Namespace) -> list[str]:
    lines = []
    for name in ("rt_polarity_minilm", "rt_polarity_minilm_lora"):
        values = []
        for seed in opts.seeds:
            run = opts.out / f"seed{seed}" / name
            args = [f"experiment={name}", f"seed={seed}"]
            results = train(run, args, opts.data_dir, opts.threads)
            values.append(accuracy(results))
            ckpt = Path(results["best_checkpoint"])
            lines.append(f"{name} seed {seed}: checkpoint {ckpt.stat().st_size:,} bytes")
        lines.append(summary(name, values))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", choices=["distill", "lora"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--data-dir", default=str(Path("../shared/datasets").resolve()))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_recipes"))
    opts = parser.parse_args()
    opts.out = opts.out.resolve()
    lines = distill(opts) if opts.recipe == "distill" else lora(opts)
    print("\n".join(["test accuracy %, mean ± sd over seeds (each seed)", *lines]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
