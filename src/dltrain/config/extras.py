"""The optional extras (pyproject.toml) and which configs need each.

The base install trains image and sequence data with every built-in net
and the CSV and W&B loggers, and nets on tables; the text stack, MLflow, TensorBoard and
the boosted trees (XGBoost, LightGBM) are extras. A
config whose ``_target_`` needs a missing extra stops before anything is imported
(``targets.check_extras``), with the pip command that fixes it:
``error: model=hf_classifier needs the text extra — pip install 'dl-train[text]'``.

Adding an extra: list it in pyproject.toml (and in ``all``), then here.
"""

from __future__ import annotations

#: Each extra and the modules it installs; all must be importable for it to count.
EXTRAS: dict[str, tuple[str, ...]] = {
    "text": ("transformers", "tokenizers", "datasets"),
    "mlflow": ("mlflow", "sqlalchemy", "alembic"),
    "tensorboard": ("tensorboard",),
    # hydra.sweeper.storage=postgresql://... (sweep/study.py names it when it is missing)
    "postgres": ("psycopg2",),
    # hydra/launcher=submitit_local|submitit_slurm
    "slurm": ("submitit", "hydra_plugins.hydra_submitit_launcher"),
    "tabular": ("xgboost", "lightgbm"),
}

#: ``_target_`` prefixes (a module, or a class) and the extra each needs.
NEEDED_BY: dict[str, str] = {
    "dltrain.nets.hf_classifier": "text",
    "dltrain.data.sources.text_files": "text",
    "dltrain.data.sources.hf_dataset": "text",
    "dltrain.data.sources.tokenizers": "text",
    "lightning.pytorch.loggers.MLFlowLogger": "mlflow",
    "lightning.pytorch.loggers.mlflow": "mlflow",
    "lightning.pytorch.loggers.TensorBoardLogger": "tensorboard",
    "lightning.pytorch.loggers.tensorboard": "tensorboard",
    "dltrain.trees.boosters.XGBoost": "tabular",
    "dltrain.trees.boosters.LightGBM": "tabular",
}


def extra_for_target(target: str) -> str | None:
    """The extra a ``_target_`` needs, or None."""
    for prefix, extra in NEEDED_BY.items():
        if target == prefix or target.startswith(prefix + "."):
            return extra
    return None


def extra_for_module(name: str) -> str | None:
    """The extra that installs a top-level module (for a ModuleNotFoundError), or None."""
    root = name.split(".")[0]
    for extra, modules in EXTRAS.items():
        if root in modules:
            return extra
    return None


def is_installed(extra: str) -> bool:
    """True when every module of ``extra`` can be imported (found, not imported)."""
    from importlib.util import find_spec

    for name in EXTRAS[extra]:
        try:
            if find_spec(name) is None:
                return False
        except (ImportError, ValueError):  # blocked, or a broken half-install
            return False
    return True


def install_hint(extra: str) -> str:
    return f"pip install 'dl-train[{extra}]'"
