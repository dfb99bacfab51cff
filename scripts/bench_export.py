"""Checkpoint vs ONNX fp32 vs ONNX int8, side by side in one invocation (issue 25).

For each workload: trains it once (``dl-train``, kept in ``--work`` for later runs),
exports it (``dl-export ... quantize=int8``), then measures the three forms of the same
model on the CPU: file size, single-request latency (batch 1: p50 and p99 of
``--calls`` requests), throughput at batch 64, and test accuracy (the checkpoint's: the
run's own test score; the ONNX files': their card's score on the same test split, by
ONNX Runtime). Latency and throughput rounds are interleaved (each round measures all
three forms), and the table shows medians over ``--rounds`` rounds, so load on a shared
machine hits every column alike.

Workloads:
  mnist_cnn   model=cnn data=mnist, 100 batches of 128 (a shared 2-core machine)
  resnet18    CIFAR-shaped ResNet-18 (small_input) on *synthetic* 3x32x32 data,
              trained for one batch: latency and size are real, accuracy is chance
  minilm      experiment=rt_polarity_minilm, the recipe as shipped (2 epochs, bf16
              autocast; the weights are fp32), all-MiniLM-L6-v2 shipped as a package
              (no Hub), texts of rt-polarity

    python scripts/bench_export.py --data-dir ../shared/datasets     # make bench
    python scripts/bench_export.py --data-dir ... --only mnist_cnn --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

WORKLOADS: dict[str, list[str]] = {
    "mnist_cnn": ["model=cnn", "data=mnist", "trainer.max_epochs=1",
                  "trainer.limit_train_batches=100"],  # fmt: skip
    "resnet18": [
        "model=resnet", "model.small_input=true", "data=synthetic", "data.shape=[3,32,32]",
        "data.num_train=1024", "data.num_test=512", "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
    ],  # fmt: skip
    "minilm": ["experiment=rt_polarity_minilm"],
}
FORMS = ("checkpoint", "onnx_fp32", "onnx_int8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--work", default=str(ROOT / "outputs" / "bench_export"))
    parser.add_argument("--only", nargs="*", default=list(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200, help="single requests per round")
    parser.add_argument("--batches", type=int, default=10, help="batches of 64 per round")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime alike")
    args = parser.parse_args()
    work = Path(args.work)
    out = work / "bench_export.json"
    results = {}
    for name in args.only:
        run = prepare(name, work, Path(args.data_dir))
        results[name] = {**measure(run, args), "machine": machine()}
        show({name: results[name]})
        _save(out, name, results[name], args)  # kept workload by workload
    print()
    show(results)
    print(f"\n{machine()}\nresults: {out}")


def _save(out: Path, name: str, result: dict[str, Any], args: argparse.Namespace) -> None:
    """Add one workload's figures to ``out`` (earlier runs' other workloads stay)."""
    old = json.loads(out.read_text()) if out.is_file() else {}
    old.setdefault("results", {})[name] = {**result, "args": vars(args)}
    out.write_text(json.dumps(old, indent=2))


def prepare(name: str, work: Path, data_dir: Path) -> Path:
    """The workload's run directory, trained and exported (reused when already there)."""
    run = work / name
    ckpt = run / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        _cli("dl-train", [*WORKLOADS[name], f"paths.data_dir={data_dir}", "logger=none",
                          f"hydra.run.dir={run}"])  # fmt: skip
    if not (run / "export" / "onnx-int8" / "card.json").is_file():
        _cli("dl-export", [f"ckpt_path={ckpt}", "quantize=int8", f"paths.data_dir={data_dir}"])
    return run


def _cli(cmd: str, args: list[str]) -> None:
    print(f"$ {cmd} {' '.join(args)}", flush=True)
    subprocess.run([str(BIN / cmd), *args], cwd=ROOT, check=True)


def measure(run: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    import torch

    torch.set_num_threads(args.threads)
    ckpt = run / "checkpoints" / "last.ckpt"
    cards = {f: json.loads((run / "export" / d / "card.json").read_text())
             for f, d in (("onnx_fp32", "onnx"), ("onnx_int8", "onnx-int8"))}  # fmt: skip
    samples = dict(np.load(run / "export" / "onnx" / "samples.npz", allow_pickle=False))
    names = [t["name"] for t in cards["onnx_fp32"]["input"]["tensors"]]
    one = {k: samples[k][:1] for k in names}
    if "attention_mask" in one:  # one text at its own length
        length = max(int(one["attention_mask"].sum()), cards["onnx_fp32"]["input"]["min_length"])
        one = {k: v[:, :length] for k, v in one.items()}
    reps = -(-64 // len(samples[names[0]]))
    batch = {k: np.concatenate([samples[k]] * reps)[:64] for k in names}
    runners = {"checkpoint": _torch_runner(ckpt, names)}
    for form, folder in (("onnx_fp32", "onnx"), ("onnx_int8", "onnx-int8")):
        runners[form] = _onnx_runner(run / "export" / folder / "model.onnx", args.threads)
    rounds: dict[str, list[dict[str, float]]] = {f: [] for f in FORMS}
    for _ in range(args.rounds):
        for form in FORMS:
            rounds[form].append(_timings(runners[form], one, batch, args.calls, args.batches))
    out = {}
    run_acc = cards["onnx_fp32"]["metrics"].get("test/acc")
    sizes = {"checkpoint": _weights_mb(ckpt), "onnx_fp32": _mb(run / "export/onnx/model.onnx"),
             "onnx_int8": _mb(run / "export/onnx-int8/model.onnx")}  # fmt: skip
    for form in FORMS:
        acc = run_acc if form == "checkpoint" else cards[form]["export_metrics"].get("test/acc")
        med = {k: statistics.median(r[k] for r in rounds[form]) for k in rounds[form][0]}
        out[form] = {"size_mb": sizes[form], **med, "test_acc": acc}
    out["checkpoint"]["ckpt_file_mb"] = _mb(ckpt)
    return out


def _torch_runner(ckpt: Path, names: list[str]) -> Callable[[dict[str, np.ndarray]], Any]:
    import torch

    from dltrain.checkpointing.checkpoint_io import load_checkpoint
    from dltrain.checkpointing.run_record import rebuild_net

    net, _ = rebuild_net(load_checkpoint(ckpt), ckpt)

    def run(inputs: dict[str, np.ndarray]) -> Any:
        with torch.inference_mode():
            if "input_ids" in inputs:
                return net({k: torch.from_numpy(v) for k, v in inputs.items()})
            return net(torch.from_numpy(inputs["x"]))

    return run


def _onnx_runner(path: Path, threads: int) -> Callable[[dict[str, np.ndarray]], Any]:
    from dltrain.export.onnx_runtime import session

    sess = session(path, threads)
    return lambda inputs: sess.run(None, inputs)[0]


def _timings(
    run: Callable[[dict[str, np.ndarray]], Any],
    one: dict[str, np.ndarray],
    batch: dict[str, np.ndarray],
    calls: int,
    batches: int,
) -> dict[str, float]:
    for _ in range(5):  # warm-up
        run(one)
    run(batch)
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        run(one)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(batches):
        run(batch)
    per_s = 64 * batches / (time.perf_counter() - t)
    ms = np.array(times) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "batch64_per_s": per_s}  # fmt: skip


def _mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def _weights_mb(ckpt: Path) -> float:
    """The net's weights as the checkpoint stores them (fp32), without optimizer state."""
    from dltrain.checkpointing.checkpoint_io import load_checkpoint

    state = load_checkpoint(ckpt)["state_dict"]
    return sum(v.numel() * v.element_size() for k, v in state.items() if k.startswith("net.")) / 1e6


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cores, load average {load:.1f} at the end (shared machine)"


def show(results: dict[str, dict[str, dict[str, float]]]) -> None:
    head = ("workload", "form", "size MB", "p50 ms", "p99 ms", "batch64/s", "test acc")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for name, forms in results.items():
        for form in FORMS:
            r = forms[form]
            acc = f"{r['test_acc']:.4f}" if r.get("test_acc") is not None else "n/a"
            print(f"| {name} | {form} | {r['size_mb']:.2f} | {r['p50_ms']:.3f} | "
                  f"{r['p99_ms']:.3f} | {r['batch64_per_s']:.0f} | {acc} |")  # fmt: skip


if __name__ == "__main__":
    main()
