"""Which inputs a network takes, checked against the data before anything is loaded.

Each network class declares ``takes``: ``"images"`` (``(C, H, W)``), ``"sequences"``
(``(C, L)``) or ``"any"``. A dataset's kind follows from the rank of ``data.shape``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from omegaconf import DictConfig

from dltrain.errors import ConfigError

KINDS = {3: "images", 2: "sequences"}
LAYOUT = {"images": "(C,H,W)", "sequences": "(C,L)"}


def data_kind(shape: list[int] | tuple[int, ...]) -> str:
    return KINDS.get(len(shape), f"rank-{len(shape)} inputs")


def model_kind(target: str) -> str:
    """The ``takes`` of the class a ``_target_`` names (``"any"`` if undeclared)."""
    from hydra.utils import get_class

    return str(getattr(get_class(target), "takes", "any"))


def takes_tables(target: str) -> bool:
    return model_kind(target) == "tables"


def gives_tables(target: str) -> bool:
    """Whether a data ``_target_`` is a table (its shape is known once it is read)."""
    from hydra.utils import get_class

    try:
        return getattr(get_class(target), "gives", None) == "tables"
    except Exception:  # noqa: BLE001 - a bad _target_ is reported when it is built
        return False


def check_model_takes_data(cfg: DictConfig, config_dir: str | Path | None = None) -> None:
    """Raise ``ConfigError`` when ``cfg.model`` cannot take ``cfg.data``'s inputs."""
    target = cfg.model.get("_target_") if cfg.get("model") else None
    if not target or cfg.get("data") is None or cfg.data.get("shape") is None:
        return  # text data has no shape; a table's is known once it is read
    if takes_tables(target) or gives_tables(str(cfg.data.get("_target_", ""))):
        return  # tables: checks.check_modality knows table data by its class
    takes, gives = model_kind(target), data_kind(list(cfg.data.shape))
    if takes in ("any", gives):
        return
    models_dir = Path(config_dir or _config_dir()) / "model"
    data_dir = Path(config_dir or _config_dir()) / "data"
    model_name = _option("model", target, models_dir)
    data_name = _option("data", str(cfg.data.get("_target_", "")), data_dir)
    kinds = {name: model_kind(t) for name, t in _targets(models_dir).items()}
    fits = [n for n, k in kinds.items() if k == gives] + [n for n, k in kinds.items() if k == "any"]
    raise ConfigError(
        f"model={model_name} takes {_with_layout(takes)} but data={data_name} "
        f"gives {_with_layout(gives)}",
        f"use model={'/'.join(fits)}" if fits else "choose a model for this data",
    )


def _with_layout(kind: str) -> str:
    """``images (C,H,W)``; a kind without a layout (``rank-1 inputs``) stays as it is."""
    return f"{kind} {LAYOUT[kind]}" if kind in LAYOUT else kind


def _config_dir() -> str:
    from dltrain.config.paths import CONFIG_DIR

    return CONFIG_DIR


@functools.lru_cache(maxsize=8)
def _targets(group_dir: Path) -> dict[str, str]:
    """Option name -> ``_target_`` of each YAML in a config group folder (plain YAML
    reading: an option's own ``_target_`` needs no composition)."""
    import yaml

    out = {}
    for path in sorted(group_dir.glob("*.yaml")):
        node = yaml.safe_load(path.read_text()) or {}
        if isinstance(node, dict) and node.get("_target_"):
            out[path.stem] = str(node["_target_"])
    return out


def _option(group: str, target: str, group_dir: Path) -> str:
    """The option chosen for ``group`` (Hydra's record when running, else the first
    option with this ``_target_``)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get(group)
        if choice:
            return str(choice)
    names = [name for name, t in _targets(group_dir).items() if t == target]
    return names[0] if names else target.rsplit(".", 1)[-1]
