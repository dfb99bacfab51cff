"""``dl-smoke``: every experiment config for one batch on the CPU, then a pass/fail table.

For CI: it catches a config that no longer composes, a class that no longer imports or
a shape that no longer fits, in seconds per experiment and without a GPU. Each
experiment runs as its own ``dl-train experiment=<name> debug=fast trainer=cpu``
process (as a user would run it) with its run directory in a temporary folder.

Which experiments: in a project folder with its own ``configs/experiment/`` (or
``--config-dir``/``DLTRAIN_CONFIG_PATH`` folders that have one), the project's;
otherwise the built-in ones; ``--all`` runs both; names on the command line pick some.
Arguments with ``=`` are overrides given to every run (``paths.data_dir=...``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dltrain.config import project
from dltrain.config.paths import CONFIG_DIR
from dltrain.errors import ConfigError

#: What every smoke run adds to the experiment: one batch per stage, on the CPU.
SMOKE = ("debug=fast", "trainer=cpu", "trainer.devices=1")


@dataclass
class Outcome:
    name: str
    source: str
    ok: bool
    seconds: float
    error: str


def experiments(run_all: bool) -> list[tuple[str, str]]:
    """``(name, source)`` of the experiments to run, the project's first; a project
    option with a built-in name replaces the built-in one, as in composition."""
    builtin = Path(CONFIG_DIR).resolve()
    found: dict[str, str] = {}
    for folder in project.user_config_dirs():
        if folder == builtin:
            continue
        for path in sorted((folder / "experiment").glob("*.yaml")):
            found.setdefault(path.stem, "project")
    if run_all or not found:
        for path in sorted((builtin / "experiment").glob("*.yaml")):
            found.setdefault(path.stem, "built-in")
    return list(found.items())


def run_one(name: str, source: str, overrides: list[str], out: Path) -> Outcome:
    cmd = [sys.executable, "-m", "dltrain", f"experiment={name}", *SMOKE]
    cmd += [f"hydra.run.dir={out / name}", *overrides]
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.monotonic() - started
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    error = errors[-1] if errors else (done.stderr.strip().splitlines() or [""])[-1]
    ok = done.returncode == 0
    return Outcome(name, source, ok, seconds, "" if ok else error)


def table(outcomes: list[Outcome]) -> str:
    width = max([len(o.name) for o in outcomes] + [len("experiment")])
    lines = [f"{'experiment':<{width}}  {'from':<8}  {'result':<6}  {'s':>6}  error"]
    for o in outcomes:
        result = "pass" if o.ok else "FAIL"
        lines.append(f"{o.name:<{width}}  {o.source:<8}  {result:<6}  {o.seconds:6.1f}  {o.error}")
    passed = sum(o.ok for o in outcomes)
    lines.append(f"{passed} of {len(outcomes)} passed")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dl-smoke",
        description="Run every experiment config for one batch on the CPU (debug=fast) "
        "and print a pass/fail table. Exit 1 if any fails.",
    )
    parser.add_argument("args", nargs="*", help="experiment names and/or key=value overrides")
    parser.add_argument("--all", action="store_true", help="built-in and project experiments")
    parser.add_argument("--config-dir", action="append", default=[], help="more config folders")
    opts = parser.parse_args(argv)
    forwarded = [a for d in opts.config_dir for a in ("--config-dir", d)]
    project.take_config_dirs(forwarded)  # into DLTRAIN_CONFIG_PATH, which the runs inherit
    overrides = [a for a in opts.args if "=" in a]
    names = [a for a in opts.args if "=" not in a]
    chosen = experiments(opts.all or bool(names))
    if names:
        known = dict(chosen)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(
                f"no experiment named {', '.join(unknown)}",
                f"choose from: {', '.join(sorted(known))}",
            )
        chosen = [(n, known[n]) for n in names]
    if not chosen:
        raise ConfigError("no experiment configs found", "add configs/experiment/<name>.yaml")
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="dl-smoke-") as tmp:
        for name, source in chosen:
            outcome = run_one(name, source, overrides, Path(tmp))
            result = "pass" if outcome.ok else "FAIL"
            print(f"{result}  {name} ({outcome.seconds:.1f} s)", flush=True)
            outcomes.append(outcome)
    print(table(outcomes))
    return 0 if all(o.ok for o in outcomes) else 1
