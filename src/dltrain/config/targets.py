"""Every ``_target_`` of a composed config: its extra is installed, and it imports.

Hydra would find out only when it instantiates the class, after data has loaded, and
wrap the cause in "Error loading 'mynet.MyNet'". Here the user's mistake is named
before any work: a missing extra, a module that is not on the path (the folder
``dl-train`` runs from and its ``src/`` are, see ``config/project.py``), a misspelled
class, or an error inside the user's own module.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dltrain.config import extras
from dltrain.data.moved import moved_target
from dltrain.errors import ConfigError, did_you_mean

#: Groups whose choice names the config best in a message, in this order.
FIRST = ("model", "module", "data", "logger")

#: Arguments the runner passes to the ``module`` node's class besides its config keys,
#: each only when the constructor takes it (``commands/build.py``): a module config
#: does not set them, and a check of its keys against the signature must not ask for them.
MODULE_GIVEN = (
    "net",
    "optimizer",
    "scheduler",
    "scheduler_interval",
    "metrics",
    "target_mean",
    "target_std",
    "loss",
)  # the last three: regression on tables
#: Keys of a data config that describe the data to the other configs (``in_shape:
#: ${data.shape}``, ``num_classes: ${data.num_classes}``); a data module whose
#: constructor does not take them is built without them (any LightningDataModule).
DATA_DESCRIPTIVE = ("shape", "num_classes")
#: Keys of a data config that the runner reads and never passes to the data module: the
#: global batch it divides into ``batch_size`` (config/global_batch.py).
DATA_RUNNER = ("global_batch_size", "tuned_global_batch")


def targets(cfg: DictConfig) -> list[tuple[str, str]]:
    """``(dotted path of the node, _target_)`` of every node, model/module/data first."""
    found = list(_walk(OmegaConf.to_container(cfg, resolve=False), ""))

    def rank(item: tuple[str, str]) -> int:
        group = item[0].split(".")[0]
        return FIRST.index(group) if group in FIRST else len(FIRST)

    return sorted(found, key=rank)


def _walk(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        target = node.get("_target_")
        if isinstance(target, str) and "${" not in target:
            yield path, target
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def check_extras(cfg: DictConfig) -> None:
    """A target that needs an extra which is not installed: say which, and how."""
    for path, target in targets(cfg):
        extra = extras.extra_for_target(target)
        if extra and not extras.is_installed(extra):
            raise ConfigError(
                f"{chosen(path, target)} needs the {extra} extra", extras.install_hint(extra)
            )


def check_importable(cfg: DictConfig, groups: tuple[str, ...] | None = None) -> None:
    """Import every target (the run imports them next anyway), or those of ``groups``;
    name what fails."""
    for path, target in targets(cfg):
        if groups is None or path.split(".")[0] in groups:
            locate(target)


def locate(target: str) -> Any:
    """The object a ``_target_`` names; ``ConfigError`` naming the user's mistake."""
    moved = moved_target(target)
    if moved != target:
        raise ConfigError(f"{target} has moved to {moved}", f"write _target_: {moved}")
    parts = target.split(".")
    obj: Any = None
    found = 0
    for i in range(len(parts), 0, -1):  # the longest prefix that is a module
        name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as ex:
            if ex.name is not None and (name == ex.name or name.startswith(ex.name + ".")):
                continue  # this prefix is no module: try a shorter one
            raise _import_failed(target, ex) from ex  # the module imports something missing
        except Exception as ex:  # noqa: BLE001 - an error inside the user's module
            raise _import_failed(target, ex) from ex
        found = i
        break
    if found == 0:
        root = parts[0]
        place = f"{root}.py" if len(parts) <= 2 else f"{root}/"
        raise ConfigError(
            f"cannot import {target} (No module named '{root}')",
            f"run dl-train from the folder that holds {place}, add it to PYTHONPATH, "
            "or pip install your package",
        )
    for depth in range(found, len(parts)):
        try:
            obj = getattr(obj, parts[depth])
        except AttributeError:
            owner = ".".join(parts[:depth])
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise ConfigError(
                f"cannot import {target} ({owner} has no attribute '{parts[depth]}')",
                f"check the _target_ spelling{did_you_mean(parts[depth], names)}",
            ) from None
    return obj


def _import_failed(target: str, ex: BaseException) -> ConfigError:
    module = target.rsplit(".", 1)[0]
    if isinstance(ex, ModuleNotFoundError) and ex.name:
        extra = extras.extra_for_module(ex.name)
        fix = (
            extras.install_hint(extra)
            if extra
            else f"pip install the package that provides '{ex.name.split('.')[0]}'"
        )
        return ConfigError(f"cannot import {target} (No module named '{ex.name}')", fix)
    first = str(ex).strip().splitlines()[0] if str(ex).strip() else ""
    return ConfigError(
        f"cannot import {target} ({type(ex).__name__}: {first})",
        f"fix the error in module {module} (HYDRA_FULL_ERROR=1 shows the traceback)",
    )


def chosen(path: str, target: str) -> str:
    """``model=hf_classifier`` as the user chose it, else the node's path and target."""
    from hydra.core.hydra_config import HydraConfig

    group = path.split(".")[0].split("[")[0]
    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get(group)
        if choice:
            return f"{group}={choice}"
    return f"{path} ({target})"
