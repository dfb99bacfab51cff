"""The benchmark script in its CI mode: every workload runs, bench.json holds the table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, make_mnist

WORKLOADS = {
    "seed_loop",
    "seed_plain",
    "seed_mlp",
    "plain_loop",
    "mnist_speed",
    "plain_linear",
    "linear",
    "help",
    "debug_fast",
    "import_lightning",
    "folder_decode",
    "folder_cached",
}


def test_bench_smoke_writes_medians_and_ratios(tmp_path: Path) -> None:
    data = make_mnist(tmp_path / "data", n_train=40, n_test=20)
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "scripts/bench.py", "--smoke", "--data-dir", str(data), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["smoke"] is True and report["repeats"] == 1
    assert set(report["workloads"]) == WORKLOADS
    for name, work in report["workloads"].items():
        (run,) = work["runs"]
        assert run["wall_s"] > 0 and run["cpu_s"] > 0 and run["rss_mb"] > 0, name
        assert work["median"]["wall_s"] == run["wall_s"]
    trained = ("seed_loop", "seed_plain", "seed_mlp", "plain_loop", "mnist_speed", "debug_fast")
    for name in trained:  # each training workload reports what it learned and how fast
        run = report["workloads"][name]["runs"][0]
        # Scored on the 20 test images (each workload its own way): whole images correct.
        correct = run["acc"] * 20
        assert correct == pytest.approx(round(correct), abs=1e-4) and run["fit_s"] > 0, name
    # The per-step pair runs in the same precision (trainer.precision=auto resolved alike).
    pair = [report["workloads"][n]["runs"][0]["precision"] for n in ("plain_loop", "mnist_speed")]
    assert pair[0] == pair[1] and pair[0] in ("32-true", "bf16-mixed"), pair
    rows = {row["what"]: row for row in report["comparisons"]}
    seed = rows["seed recipe wall s: seed_loop | seed_mlp"]
    medians = {n: w["median"] for n, w in report["workloads"].items()}
    assert seed["baseline"] == medians["seed_loop"]["wall_s"]
    assert seed["ours"] == medians["seed_mlp"]["wall_s"]
    assert seed["ratio"] == round(seed["ours"] / seed["baseline"], 3)
    assert isinstance(seed["met"], bool)
    step = rows["speed recipe train s: plain_loop | mnist_speed"]
    assert step["baseline"] == medians["plain_loop"]["train_s"]
    assert step["ours"] == medians["mnist_speed"]["train_s"]
    assert 0 < step["ours"] <= medians["mnist_speed"]["fit_s"]
    assert 0 < step["baseline"] <= medians["plain_loop"]["fit_s"]
    # The runner's own cost a step: train_s over optimizer steps, with a linear net.
    linear = report["workloads"]["linear"]["runs"][0]
    assert linear["steps"] == 1  # 40 images, batch 128
    assert linear["step_ms"] == round(linear["train_s"] * 1000, 4)
    overhead = rows["framework ms per step, linear net: plain_linear | linear"]
    assert overhead["ours"] == medians["linear"]["step_ms"]
    assert overhead["baseline"] == medians["plain_linear"]["step_ms"] > 0
    # Accuracy is a mean over the seeds run (one in smoke mode), with its spread.
    acc = rows["seed recipe test acc (mean over seeds): seed_loop | seed_mlp"]
    assert acc["baseline"] == report["workloads"]["seed_loop"]["mean_acc"]
    assert acc["ours"] == round(report["workloads"]["seed_mlp"]["runs"][0]["acc"], 5)
    assert acc["seeds"] == 1 and acc["diff_stderr"] is None
    assert report["seed_rounds"] == 1
    assert rows["dl-train --help wall s"]["ours"] == medians["help"]["wall_s"]
    rss = rows["peak RSS MB: import_lightning | debug_fast"]
    assert rss["baseline"] == medians["import_lightning"]["rss_mb"]
    assert rss["met"] == (rss["ours"] - rss["baseline"] <= 300)
    assert len([r for r in rows if r.startswith("peak RSS MB")]) == len(trained)
    # Image folder rows: the decode run's rate from its "decoded N images" line (its cache
    # removed first), the cached run's from its training epoch (48 of the 60 images).
    decode = rows["image folder, first pass: images/s decoded"]
    assert decode["ours"] == medians["folder_decode"]["images_per_s"] > 0
    cached = report["workloads"]["folder_cached"]["runs"][0]
    assert cached["steps"] == 1
    assert cached["images_per_s"] == pytest.approx(48 / cached["train_s"], rel=0.01)
    assert rows["image folder, cached epoch: images/s trained"]["ours"] == cached["images_per_s"]
    # The table on stdout carries the same rows.
    for what in rows:
        assert what in proc.stdout
    assert f"wrote {out}" in proc.stdout
