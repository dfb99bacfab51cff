"""scripts/bench_startup.py: the cost curves' fit, table and PNG, and the start-up table's
ratios. Benchmarks are not tests: nothing here asserts a time, only what is recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, make_mnist

sys.path.insert(0, str(ROOT / "scripts"))
import bench_startup  # noqa: E402


def test_fit_recovers_fixed_and_per_epoch_cost() -> None:
    fixed, per_epoch = bench_startup.fit([1, 2, 4, 8], [7.5 + 3 * e for e in (1, 2, 4, 8)])
    assert fixed == pytest.approx(7.5) and per_epoch == pytest.approx(3.0)


def test_startup_table_is_medians_over_import_torch() -> None:
    def work(name: str, walls: list[float]) -> bench_startup.Workload:
        w = bench_startup.Workload(name, [])
        w.runs = [{"wall_s": v, "cpu_s": v / 2} for v in walls]
        return w

    works = {
        "import_torch": work("import_torch", [2.0, 9.0, 2.2]),
        "help": work("help", [0.5, 0.7, 0.6]),
    }
    rows = bench_startup.startup_table(works)
    assert rows["import_torch"] == {
        "median_s": 2.2,
        "x_import_torch": 1.0,
        "runs_s": [2.0, 9.0, 2.2],
        "cpu_s": 1.1,
        "cpu_x_import_torch": 1.0,
    }
    assert rows["help"]["median_s"] == 0.6 and rows["help"]["x_import_torch"] == 0.27


def test_cost_curves_png_draws_the_medians_and_fitted_lines(tmp_path: Path) -> None:
    curves = {"epochs": [1, 2, 4, 8]}
    for side, (fixed, per) in (("plain", (3.0, 2.0)), ("dltrain", (6.0, 2.1))):
        curves[side] = {"wall_s": [fixed + per * e for e in (1, 2, 4, 8)], "fixed_s": fixed,
                        "per_epoch_s": per}  # fmt: skip
    png = tmp_path / "cost_curves.png"
    bench_startup.draw(curves, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# Eight processes (about 4 minutes on the loaded 2-core machine): the fit, the tables and
# the PNG have their fast twins above.
@pytest.mark.slow
def test_cost_curves_alone_write_the_table_json_and_png(tmp_path: Path) -> None:
    data = make_mnist(tmp_path / "data", n_train=40, n_test=20)
    out = tmp_path / "bench" / "bench_startup.json"
    out.parent.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "scripts/bench_startup.py",
            "--cost-curves",
            "--epochs",
            "1",
            "2",
            "--rounds",
            "1",
            "--data-dir",
            str(data),
            "--out",
            str(out),
        ],  # fmt: skip
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert "startup" not in report  # --cost-curves alone
    curves = report["cost_curves"]
    assert curves["epochs"] == [1, 2]
    for side in ("plain", "dltrain"):
        walls = curves[side]["wall_s"]
        assert len(walls) == 2
        # Two points: the line goes through both.
        assert curves[side]["fixed_s"] + curves[side]["per_epoch_s"] == pytest.approx(
            walls[0], abs=0.02
        )
    assert "plain loop fixed" in proc.stdout and "dl-train   fixed" in proc.stdout
    png = out.with_name("cost_curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
