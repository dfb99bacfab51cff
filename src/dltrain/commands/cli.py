"""Console entry points ``dl-train``, ``dl-eval``, ``dl-predict`` and ``dl-report``.

Imports nothing heavy at module level: ``dl-train --help`` and ``--cfg job`` only need
Hydra, so torch and Lightning are imported inside the task functions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import hydra
from omegaconf import DictConfig

from dltrain import errors
from dltrain.config import project
from dltrain.config.paths import CONFIG_DIR
from dltrain.runtime import run_dirs, startup

run_dirs.register()  # ${unique_dir:...} in configs/hydra/default.yaml


def _show_traceback() -> bool:
    return os.environ.get("DLTRAIN_SHOW_TRACEBACK") == "1"


def _exit_with(ex: BaseException) -> None:
    """Print ``error: what — how to fix`` and exit with the error's code. An error every
    DDP rank raises together is printed once, by rank 0."""
    code, message = errors.describe(ex)
    user = errors.find_user_error(ex)
    if user is None or not user.all_ranks or _is_rank_zero():
        print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def _is_rank_zero() -> bool:
    from dltrain.runtime.process import is_rank_zero

    return is_rank_zero()


def _run_app(app: Callable[[], object], config_name: str) -> None:
    """Run a Hydra app; composition errors become one ``error:`` line and exit 2.
    ``--help`` is answered by config/app_help.py (Hydra's text, without its cost)."""
    if "DLTRAIN_SHOW_TRACEBACK" not in os.environ:  # kept for DDP child processes
        os.environ["DLTRAIN_SHOW_TRACEBACK"] = os.environ.get("HYDRA_FULL_ERROR", "0")
    # Make Hydra re-raise instead of printing its own trimmed traceback.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    startup.defer_collection()  # until the task has imported what it needs
    startup.defer_unused_imports()
    try:
        # The user's project: --config-dir folders go in front of the built-in configs
        # (see config/project.py), and the folder it runs from is importable.
        sys.argv[1:] = project.take_config_dirs(sys.argv[1:])
        project.make_code_importable()
        if not _printed_help(config_name):
            app()
    except KeyboardInterrupt:
        print("error: interrupted — rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except Exception as ex:  # noqa: BLE001 - the CLI boundary: every error is reported
        if _show_traceback():
            raise
        _exit_with(ex)


def _printed_help(config_name: str) -> bool:
    from dltrain.config import app_help

    if not app_help.wants_plain_help(sys.argv[1:]):
        return False
    text = app_help.help_text(config_name, sys.argv[1:], os.path.basename(sys.argv[0]))
    if text is None:  # a config with its own search path: Hydra's help lists it
        return False
    print(text)
    return True


def _run_task(
    task: Callable[[DictConfig], object],
    cfg: DictConfig,
    checks: Callable[[DictConfig], None] | None = None,
) -> object:
    """Run one job. A single run reports its own errors here, before Hydra adds its
    "Error executing job" line; in a multirun errors go to the sweeper, which records
    the failed job and carries on. The run's ``.hydra/`` record replaces an existing
    one only once ``checks`` pass, and is put back when a later check rejects the
    command (exit 2; ``run_dirs.JobRecord``)."""
    from dltrain.config.checks import is_multirun

    record = run_dirs.JobRecord.capture(cfg)
    try:
        if record is not None:
            record.write(replace=False)  # a new run directory: recorded at once
        if checks is not None:
            checks(cfg)
        if record is not None:
            record.write(replace=True)
        return task(cfg)
    except Exception as ex:  # noqa: BLE001 - the CLI boundary
        if record is not None and errors.describe(ex)[0] == 2:  # rejected: keep the record
            record.restore()
        if _show_traceback() or is_multirun():
            raise
        _exit_with(ex)
    return None


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
def _train(cfg: DictConfig) -> float | None:
    def checks(cfg: DictConfig) -> None:
        from dltrain.config.checks import validate_run

        validate_run(cfg)  # a bad config is rejected before torch and Lightning load

    def task(cfg: DictConfig) -> float | None:
        from dltrain.commands.train import run

        startup.freeze_imports()
        return run(cfg)

    return _run_task(task, cfg, checks)


@hydra.main(config_path=CONFIG_DIR, config_name="eval", version_base="1.3")
def _eval(cfg: DictConfig) -> None:
    from dltrain.commands.evaluate import run

    startup.freeze_imports()
    _run_task(run, cfg)


@hydra.main(config_path=CONFIG_DIR, config_name="predict", version_base="1.3")
def _predict(cfg: DictConfig) -> None:
    def task(cfg: DictConfig) -> object:
        from dltrain.serve.card import is_export_folder

        if is_export_folder(str(cfg.ckpt_path)):  # ONNX Runtime alone: torch never imported
            from omegaconf import OmegaConf

            from dltrain.serve.files import run as run_export

            startup.freeze_imports()
            return run_export(OmegaConf.to_container(cfg, resolve=True))
        from dltrain.commands.predict import run

        startup.freeze_imports()
        return run(cfg)

    _run_task(task, cfg)


@hydra.main(config_path=CONFIG_DIR, config_name="export", version_base="1.3")
def _export(cfg: DictConfig) -> None:
    from dltrain.commands.export import run

    startup.freeze_imports()
    _run_task(run, cfg)


def train_main() -> None:
    """``dl-train``: fit, then test with the best checkpoint."""
    sys.argv[1:] = [_tune_list(arg) for arg in sys.argv[1:]]
    _run_app(_train, "train")


def _tune_list(arg: str) -> str:
    """``tune=lr,batch_size`` means both finders (Hydra's list of group options,
    ``tune=[lr,batch_size]``), not a sweep over them: one run tunes both."""
    if arg.startswith("tune=") and "," in arg and "[" not in arg:
        return f"tune=[{arg[5:]}]"
    return arg


def eval_main() -> None:
    """``dl-eval ckpt_path=...``: validate and test a checkpoint."""
    _run_app(_eval, "eval")


def predict_main() -> None:
    """``dl-predict ckpt_path=... inputs=...``: top-k classes of images or texts."""
    _run_app(_predict, "predict")


def export_main() -> None:
    """``dl-export ckpt_path=... format=onnx``: the checkpoint as a deployable folder."""
    _run_app(_export, "export")


def serve_main() -> None:
    """``dl-serve ckpt_path=<export folder or checkpoint>``: predictions over HTTP. An
    export folder is served by ONNX Runtime alone (torch is never imported)."""
    from dltrain.serve import server

    def main() -> int:
        if {"-h", "--help"} & set(sys.argv[1:]):
            print(server.USAGE)
            return 0
        opts = server.parse(sys.argv[1:])
        if server.is_export_folder(opts.ckpt_path):
            return server.main(sys.argv[1:])
        if not os.path.isfile(opts.ckpt_path):  # said before torch is imported
            raise errors.DataError(
                f"{opts.ckpt_path} is neither a checkpoint file nor an export folder "
                "(no card.json)",
                "pass a .ckpt written by dl-train, or the folder dl-export wrote",
            )
        from pathlib import Path

        from dltrain.commands.serve_checkpoint import predictor

        found = predictor(Path(opts.ckpt_path), opts.threads)
        return server.serve(found, opts, server.describe(found, opts.ckpt_path))

    _run_main(main)


def _run_main(main: Callable[[], int]) -> None:
    """Run a plain (non-Hydra) command; user errors become one ``error:`` line."""
    startup.defer_unused_imports()
    try:
        sys.exit(main())
    except errors.UserError as ex:
        _exit_with(ex)


def report_main() -> None:
    """``dl-report [dirs]``: table of runs, report.md and a curves PNG."""
    from dltrain.commands.report import main

    _run_main(main)


def init_main() -> None:
    """``dl-init DIR``: write a small working project to start from."""
    from dltrain.commands.init import main

    _run_main(main)


def smoke_main() -> None:
    """``dl-smoke``: every experiment for one batch on the CPU, a pass/fail table."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    # No collections while torch and Lightning import; smoke_run.warm_up freezes them.
    startup.defer_collection()
    from dltrain.commands.smoke import main

    _run_main(lambda: main(train_main))


if __name__ == "__main__":
    train_main()
