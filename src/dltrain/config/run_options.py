"""The top-level settings of ``dl-train`` (``configs/train.yaml``), declared as a typed
signature so they are checked like every ``_target_``: by ``signatures.py``, with
pydantic. They belong to the train recipe; they are declared here because the recipe
(``commands/``) sits above the checks."""

from __future__ import annotations

from typing import Annotated, Literal

from annotated_types import Ge


def run_options(
    seed: int | None,
    train: bool,
    test: bool,
    ckpt_path: str | None,
    resume: Literal["auto", "never"],
    nan_policy: Literal["stop", "skip"],
    monitor: str,
    monitor_mode: Literal["min", "max"],
    optimized_metric: str | list[str] | None,
    compile: bool,
    matmul_precision: Literal["highest", "high", "medium"],
    channels_last: bool = False,
    threads: Annotated[int, Ge(1)] | None = None,
    tune_malloc: bool = True,
    task_name: str = "train",
    task: Literal["classification", "regression"] | None = None,
    regression_loss: Literal["mse", "huber"] = "mse",
    tags: list[str] | None = None,
) -> None:
    """``dl-train seed=... resume=...``: see the comments in configs/train.yaml."""


def scheduler_group(scheduler: dict | None = None, interval: Literal["epoch", "step"] = "epoch"):
    """``scheduler=<name>``: a ``torch.optim.lr_scheduler`` node (or null) and how often
    Lightning steps it."""


#: Config node -> the signature its keys are checked against (nodes without _target_).
#: "" is the config's top level, where only the keys named in the signature are checked
#: (the other top-level keys are groups and Hydra's).
NODES = {"": run_options, "scheduler": scheduler_group}
