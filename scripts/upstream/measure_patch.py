"""The upstream patch's measurement: ``import lightning.pytorch`` and ``dl-train
debug=fast`` with the installed torchmetrics and with the patched copy first on
``PYTHONPATH``, in interleaved rounds (medians), with ``python -c "import torch"`` in the
same rounds; and which heavy modules each run loaded.

    python scripts/upstream/measure_patch.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from bench import BIN, PYTHON, Workload, run_once  # noqa: E402

HEAVY = ("torchvision", "transformers", "scipy.signal", "scipy", "matplotlib.pyplot", "sklearn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tm-patch-") as tmp:
        patched = Path(tmp) / "patched"
        site = Path(sysconfig.get_paths()["purelib"])
        make = [PYTHON, str(HERE / "torchmetrics_lazy_families.py"), str(site), str(patched)]
        subprocess.run(make, check=True, capture_output=True)
        log = Path(tmp) / "logs"
        env = ["env", f"PYTHONPATH={patched}"]
        dump = Path(tmp) / "imports-{}.json"
        dl = [str(BIN / "dl-train"), "debug=fast", f"paths.log_dir={log}"]
        works = [
            Workload("import_torch", [PYTHON, "-c", "import torch"]),
            Workload("lightning", [PYTHON, "-c", "import lightning.pytorch"]),
            Workload("lightning_patched", [*env, PYTHON, "-c", "import lightning.pytorch"]),
            Workload(
                "debug_fast",
                ["env", f"DLTRAIN_IMPORTS_AT_EXIT={dump}".format("installed"), *dl],
                "results_json",
            ),  # fmt: skip
            Workload(
                "debug_fast_patched",
                [*env, f"DLTRAIN_IMPORTS_AT_EXIT={dump}".format("patched"), *dl],
                "results_json",
            ),  # fmt: skip
        ]
        for r in range(args.rounds):
            shift = r % len(works)
            for work in works[shift:] + works[:shift]:
                work.runs.append(run_once(work, log, 42))
                print(f"round {r + 1} {work.name:20s} {work.runs[-1]['wall_s']:7.2f} s", flush=True)
        torch_s = statistics.median(r["wall_s"] for r in works[0].runs)
        report = {}
        for w in works:
            m = statistics.median(r["wall_s"] for r in w.runs)
            report[w.name] = {"median_s": round(m, 2), "x_import_torch": round(m / torch_s, 2),
                              "runs_s": [r["wall_s"] for r in w.runs]}  # fmt: skip
        for side in ("installed", "patched"):
            loaded = set(json.loads(Path(str(dump).format(side)).read_text())["loaded"])
            report[f"heavy_loaded_{side}"] = [m for m in HEAVY if m in loaded]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
