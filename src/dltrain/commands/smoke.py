"""``dl-smoke``: every experiment config for one batch on the CPU, then a pass/fail table.

For CI: it catches a config that no longer composes, a class that no longer imports or
a shape that no longer fits, without a GPU. Every experiment runs as
``dl-train experiment=<name> debug=fast trainer=cpu`` with its own run directory, inside
warm worker processes forked from this one once it has imported torch and Lightning
(``smoke_run.py`` puts back what each run changed in its worker), so the whole table
costs one start-up instead of one per experiment. ``--jobs`` workers (default: one per
CPU core, at most 4) run experiments side by side, each with its share of the cores'
threads: a one-batch run is mostly Python, which one core runs no faster than two.

A smoke run checks wiring, not data, and runs offline (``HF_HUB_OFFLINE=1`` unless set):
where an experiment's data or pretrained weights are not on this machine, it runs on a
synthetic stand-in of the same shape, classes and dtype (``data/sources/stand_in.py``)
and a randomly initialised model of the same architecture (``smoke_plan.py``), and its
row says so: ``pass (synthetic data)``, ``pass (random weights)``.

Which experiments: in a project folder with its own ``configs/experiment/`` (or
``--config-dir``/``DLTRAIN_CONFIG_PATH`` folders that have one), the project's;
otherwise the built-in ones; ``--all`` runs both; names on the command line pick some.
Arguments with ``=`` are overrides given to every run (``paths.data_dir=...``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dltrain.config import project
from dltrain.config.paths import CONFIG_DIR
from dltrain.errors import ConfigError, UserError

if TYPE_CHECKING:
    from dltrain.commands.smoke_plan import Plan

#: What every smoke run adds to the experiment: one batch per stage, on the CPU.
SMOKE = ("debug=fast", "trainer=cpu", "trainer.devices=1")
#: The file in each run directory that keeps the run's terminal output.
LOG = "smoke.log"


@dataclass
class Outcome:
    name: str
    source: str
    ok: bool
    seconds: float
    error: str
    #: What stood in for absent data or weights (empty: the real ones).
    notes: list[str] = field(default_factory=list)
    synthetic_data: bool = False
    random_weights: bool = False

    @property
    def result(self) -> str:
        if not self.ok:
            return "FAIL"
        kinds = [k for k, on in (("synthetic data", self.synthetic_data),
                                 ("random weights", self.random_weights)) if on]  # fmt: skip
        return f"pass ({', '.join(kinds)})" if kinds else "pass"


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


def run_one(
    name: str, source: str, overrides: list[str], out: Path, train: Callable[[], None]
) -> Outcome:
    """One experiment in this process: plan its stand-ins from the composed config, then
    run ``dl-train`` (``train``, its entry point: passed in, as the CLI module imports
    this one) with them, its run directory ``out/<name>``."""
    from dltrain.commands import smoke_run
    from dltrain.data.sources import stand_in

    started = time.monotonic()
    args = [f"experiment={name}", *SMOKE, *overrides]
    try:
        plan = _plan(args, out / ".stand-ins" / name, train)
    except UserError as ex:  # a stand-in this machine cannot build: the row says why
        return Outcome(name, source, False, time.monotonic() - started, f"error: {ex}")
    except Exception as ex:  # noqa: BLE001 - e.g. transformers missing: this row fails
        error = f"error: no stand-in model: {type(ex).__name__}: {ex}"
        return Outcome(name, source, False, time.monotonic() - started, error)
    run_dir = out / name
    argv = ["dl-train", *args, *(plan.overrides if plan else []), f"hydra.run.dir={run_dir}"]
    with stand_in.standing_in(out / ".stand-ins" / name) as data_notes:
        done = smoke_run.run_cli(train, argv)
    seconds = time.monotonic() - started
    if run_dir.is_dir():
        (run_dir / LOG).write_text(done.stdout + done.stderr)
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    error = errors[-1] if errors else (done.stderr.strip().splitlines() or [""])[-1]
    ok = done.code == 0
    notes = [*(plan.notes if plan else []), *data_notes]
    weights = bool(plan and plan.random_weights)
    return Outcome(name, source, ok, seconds, "" if ok else error, notes, bool(data_notes), weights)


def _plan(args: list[str], assets: Path, train: Callable[[], None]) -> Plan | None:
    """The experiment's stand-ins, or ``None`` when it does not compose (the run then
    reports why, as ``dl-train`` would)."""
    from hydra import compose, initialize_config_dir

    from dltrain.commands import smoke_plan, smoke_run

    # Quiet: writing a stand-in model draws progress bars; the row says what stood in.
    quiet = contextlib.redirect_stderr(io.StringIO())
    with smoke_run.isolated(collect=False), quiet, contextlib.redirect_stdout(io.StringIO()):
        try:
            with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
                cfg = compose("train", overrides=[a for a in args if not a.startswith("hydra.")])
        except Exception:  # noqa: BLE001 - composition errors are the run's to report
            return None
        return smoke_plan.plan(cfg, assets, args, train)


def table(outcomes: list[Outcome]) -> str:
    width = max([len(o.name) for o in outcomes] + [len("experiment")])
    result_width = max(len(o.result) for o in outcomes)
    lines = [f"{'experiment':<{width}}  {'from':<8}  {'result':<{result_width}}  {'s':>6}  "
             "error / stand-ins"]  # fmt: skip
    for o in outcomes:
        said = o.error if not o.ok else "; ".join(o.notes)
        lines.append(
            f"{o.name:<{width}}  {o.source:<8}  {o.result:<{result_width}}  {o.seconds:6.1f}  "
            f"{said}".rstrip()
        )
    passed = sum(o.ok for o in outcomes)
    lines.append(f"{passed} of {len(outcomes)} passed")
    return "\n".join(lines)


def main(train: Callable[[], None], argv: list[str] | None = None) -> int:
    """``dl-smoke``; ``train``: ``dl-train``'s entry point, which runs each experiment."""
    parser = argparse.ArgumentParser(
        prog="dl-smoke",
        description="Run every experiment config for one batch on the CPU (debug=fast) "
        "and print a pass/fail table. Exit 1 if any fails.",
    )
    parser.add_argument(
        "args", nargs="*", help="experiment names and/or overrides (key=value, ~key)"
    )
    parser.add_argument("--all", action="store_true", help="built-in and project experiments")
    parser.add_argument("--config-dir", action="append", default=[], help="more config folders")
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=min(os.cpu_count() or 1, 4),
        help="experiments run side by side, each in a warm worker process "
        "(default: the CPU cores, at most 4; 1: all in this process)",
    )
    parser.add_argument(
        "--out",
        help="keep the run directories here (<out>/<experiment>); default: a "
        "temporary folder, removed at the end",
    )
    opts = parser.parse_args(argv)
    forwarded = [a for d in opts.config_dir for a in ("--config-dir", d)]
    project.take_config_dirs(forwarded)  # into DLTRAIN_CONFIG_PATH, which the runs inherit
    overrides = [a for a in opts.args if _is_override(a)]
    names = [a for a in opts.args if not _is_override(a)]
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
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # wiring, not downloads (module docstring)
    from dltrain.commands import smoke_run

    if opts.jobs < 1:
        raise ConfigError(f"--jobs {opts.jobs} runs nothing", "pass --jobs 1 or more")
    smoke_run.warm_up()
    out = Path(opts.out).resolve() if opts.out else Path(tempfile.mkdtemp(prefix="dl-smoke-"))
    try:
        jobs = [(name, source, overrides, out, train) for name, source in chosen]
        outcomes = smoke_run.run_all(run_one, jobs, opts.jobs, _said, worker_died)
    finally:
        if not opts.out:
            shutil.rmtree(out, ignore_errors=True)
    print(table(outcomes))
    return 0 if all(o.ok for o in outcomes) else 1


def _is_override(arg: str) -> bool:
    """``key=value``, ``+key=value`` and Hydra's deletion ``~key`` (no ``=``)."""
    return "=" in arg or arg.startswith("~")


def _said(outcome: Outcome) -> None:
    """One line as each experiment finishes (the table follows at the end)."""
    print(f"{outcome.result}  {outcome.name} ({outcome.seconds:.1f} s)", flush=True)


def worker_died(job: tuple, ex: BaseException) -> Outcome:
    """The row of an experiment whose worker process died under it (a crash in native
    code, the kernel's out-of-memory killer)."""
    name, source = job[0], job[1]
    error = f"error: the smoke worker running it died ({type(ex).__name__}: {ex})"
    return Outcome(name, source, False, 0.0, error)
