"""``dl-export``: a checkpoint as a deployable folder, ``<run dir>/export/<format>/``.

The recipe: load the checkpoint, rebuild its net and its data (the training config,
the table's fitted preprocessing), hand both to ``dltrain.export``, which writes the
model file, the samples with the checkpoint's outputs and the card (layout:
``dltrain/export/card.py``). Boosted trees go out in their booster's own format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from dltrain.checkpointing.checkpoint_io import load_checkpoint
from dltrain.checkpointing.run_record import CONFIG_KEY, rebuild_net
from dltrain.commands import build
from dltrain.commands.evaluate import merge_overrides
from dltrain.config.checks import validate
from dltrain.data.sources.tabular import checkpoint_state
from dltrain.errors import ConfigError, DataError

OWN_KEYS = ("format", "quantize", "samples", "out_dir")
#: The folder a checkpoint's run keeps them in: its parent is the run directory.
CHECKPOINT_FOLDER = "checkpoints"


def run(cfg: DictConfig) -> list[Path]:
    ckpt_path = Path(str(cfg.ckpt_path))
    if not ckpt_path.is_file():
        raise DataError(f"checkpoint {ckpt_path} does not exist", "pass ckpt_path=<a .ckpt file>")
    checkpoint = load_checkpoint(ckpt_path)
    if not checkpoint.get(CONFIG_KEY):
        raise DataError(
            f"{ckpt_path} has no dl-train config inside",
            "export checkpoints written by dl-train (they carry their config)",
        )
    stored = checkpoint[CONFIG_KEY]
    run_cfg = merge_overrides(OmegaConf.create(stored), cfg)
    with open_dict(run_cfg):
        for key in OWN_KEYS:  # this command's own keys, not the training config's
            run_cfg.pop(key, None)
    validate(run_cfg)
    out_root = Path(str(cfg.out_dir)) if cfg.get("out_dir") else run_dir(ckpt_path) / "export"
    fitted = checkpoint_state(checkpoint)
    metrics = run_metrics(ckpt_path)
    if "dltrain_booster" in checkpoint:
        folders = [_export_trees(run_cfg, cfg, checkpoint, fitted or {}, out_root, metrics)]
    else:
        folders = _export_net(run_cfg, cfg, checkpoint, ckpt_path, fitted, out_root, metrics)
    for folder in folders:
        card = json.loads((folder / "card.json").read_text())
        shown = "  ".join(f"{k}={v:.4f}" for k, v in sorted(card["export_metrics"].items()))
        diff = card.get("parity_max_abs_diff")
        parity = f"  max|diff|={diff:.2g}" if diff is not None else ""
        print(f"export: {folder}  {shown}{parity}")
    return folders


def _export_net(
    run_cfg: DictConfig,
    cfg: DictConfig,
    checkpoint: dict[str, Any],
    ckpt_path: Path,
    fitted: dict[str, Any] | None,
    out_root: Path,
    metrics: dict[str, float],
) -> list[Path]:
    from dltrain.export.folder import Request, export
    from dltrain.export.source import describe

    datamodule = build.datamodule(run_cfg, fitted=fitted)
    datamodule.setup("test")
    net, _ = rebuild_net(checkpoint, ckpt_path)
    source = describe(net, datamodule, checkpoint, fitted)
    req = Request(
        format=str(cfg.format),
        quantize=None if cfg.quantize in (None, "", "none") else str(cfg.quantize),
        samples=int(cfg.samples),
        checkpoint=str(ckpt_path.resolve()),
        config=OmegaConf.to_container(OmegaConf.create(checkpoint[CONFIG_KEY]), resolve=False),
        metrics=metrics,
    )
    return export(source, out_root, req)


def _export_trees(
    run_cfg: DictConfig,
    cfg: DictConfig,
    checkpoint: dict[str, Any],
    fitted: dict[str, Any],
    out_root: Path,
    metrics: dict[str, float],
) -> Path:
    from dltrain.export.booster import export_booster
    from dltrain.trees import recipe

    if str(cfg.format) not in ("booster", "onnx"):
        raise ConfigError(
            f"boosted trees export in their booster's own format, not format={cfg.format}",
            "use format=booster (XGBoost JSON / LightGBM text)",
        )
    if cfg.quantize not in (None, "", "none"):
        raise ConfigError("quantize= applies to nets, not boosted trees", "leave quantize out")
    datamodule = build.datamodule(run_cfg, fitted=fitted)
    datamodule.setup("test")
    booster = recipe.load(run_cfg, checkpoint)
    test = datamodule.test_set
    return export_booster(
        booster,
        test.x.cpu().numpy(),
        test.y.cpu().numpy(),
        fitted,
        out_root,
        int(cfg.samples),
        checkpoint=str(Path(str(cfg.ckpt_path)).resolve()),
        config=OmegaConf.to_container(OmegaConf.create(checkpoint[CONFIG_KEY]), resolve=False),
        metrics=metrics,
    )


def run_dir(ckpt_path: Path) -> Path:
    """``<run dir>`` of ``<run dir>/checkpoints/<name>.ckpt``; else the file's folder."""
    parent = ckpt_path.resolve().parent
    return parent.parent if parent.name == CHECKPOINT_FOLDER else parent


def run_metrics(ckpt_path: Path) -> dict[str, float]:
    """The run's own test metrics (its ``results.json``), when the run directory has it."""
    path = run_dir(ckpt_path) / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    found = results.get("metrics") or {}
    return {k: float(v) for k, v in found.items() if k.startswith("test/") and _number(v)}


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
