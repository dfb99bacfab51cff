"""What a run prints: the composed config as a tree at the start (also saved as
``config_tree.txt``) and a one-screen summary at the end."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from dltrain.tracking.redact import redact_tree

TREE_FILE = "config_tree.txt"
#: Leaves of the tree longer than this are cut (long paths, lists of tags).
MAX_VALUE = 60


def _short(value: Any) -> str:
    text = str(value) if not isinstance(value, str) else value
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _target_name(node: Mapping[str, Any]) -> str:
    return str(node.get("_target_", "")).rsplit(".", 1)[-1]


def _add(branch: Tree, node: Mapping[str, Any]) -> None:
    """Scalars of a node on one wrapped line (``key=value ...``); sub-nodes as branches.
    Null values are left out: the full config is in ``.hydra/config.yaml``."""
    flat = []
    for key, value in node.items():
        if key == "_target_" or value is None or isinstance(value, Mapping):
            continue
        if isinstance(value, list):
            value = "[" + ", ".join(map(str, value)) + "]"
        flat.append(f"{key}={_short(value)}")
    if flat:
        branch.add(" ".join(flat))
    for key, value in node.items():
        if isinstance(value, Mapping) and value:
            target = f": {_target_name(value)}" if "_target_" in value else ""
            _add(branch.add(f"[bold]{key}[/]{target}"), value)


def config_tree(cfg: DictConfig, choices: Mapping[str, str] | None = None) -> Tree:
    """Groups as branches (``model: mlp (MLP)``), plain top-level keys under ``run``."""
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - an unresolvable value still shows, unresolved
        plain = OmegaConf.to_container(cfg, resolve=False)
    plain = redact_tree(plain)  # no API keys from the environment on screen or on disk
    assert isinstance(plain, dict)
    choices = choices or {}
    tree = Tree("[bold]config[/] (nulls omitted; in full: .hydra/config.yaml)")
    scalars = {k: v for k, v in plain.items() if not isinstance(v, Mapping)}
    _add(tree.add("[bold]run[/]"), scalars)
    for key, value in plain.items():
        if not isinstance(value, Mapping):
            continue
        label = f"[bold]{key}[/]"
        if key in choices and choices[key] is not None:
            label += f": {choices[key]}"
        if "_target_" in value:
            label += f" ({_target_name(value)})"
        # Groups of callbacks/loggers: their members and classes on one line.
        if value and all(isinstance(v, Mapping) and "_target_" in v for v in value.values()):
            tree.add(label).add(" ".join(f"{n}={_target_name(m)}" for n, m in value.items()))
            continue
        _add(tree.add(label), value)
    return tree


def hydra_choices() -> dict[str, str]:
    """``group -> chosen option`` of the running Hydra app (empty outside one)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return dict(HydraConfig.get().runtime.choices)
    except Exception:  # noqa: BLE001 - composed outside a Hydra app (tests, scripts)
        return {}


def show_config(cfg: DictConfig, run_dir: Path, echo: bool = True) -> Path:
    """Save the config tree, without colour codes, in the run dir (and print it)."""
    tree = config_tree(cfg, hydra_choices())
    if echo:
        Console().print(tree)
    path = run_dir / TREE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        Console(file=f, width=100, color_system=None, force_terminal=False).print(tree)
    return path


#: Stages in the order the summary lists them; each stage's metrics on one line.
STAGES = ("test", "val", "train")


def summary(record: Mapping[str, Any], run_dir: Path, extra_places: Mapping[str, str]) -> Table:
    """Metrics (``val/acc`` is the last epoch's, ``val/acc_best`` the best), counts,
    timings and where everything was written."""
    epochs = record.get("epochs", "?")
    counts = f"{epochs} epoch{'' if epochs == 1 else 's'}, {record.get('steps', '?')} steps"
    if record.get("train_samples_per_s"):
        counts += f", {record['train_samples_per_s']:,.0f} train samples/s"
    table = Table(
        title=f"done in {record.get('wall_s', 0):.1f}s: {counts}",
        title_justify="left",
        title_style="bold",
        show_header=False,
        box=None,
        padding=(0, 1),
    )
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    metrics = record.get("metrics", {})
    # Learning rates (lr-*) are in the history and plots, not results.
    metrics = {k: v for k, v in metrics.items() if not k.startswith("lr")}
    stages = list(STAGES) + sorted({k.split("/")[0] for k in metrics} - set(STAGES))
    for stage in stages:
        keys = sorted(k for k in metrics if k.split("/")[0] == stage)
        if keys:
            table.add_row(stage, "  ".join(f"{k}={metrics[k]:.4f}" for k in keys))
    table.add_row("run dir", str(run_dir))
    for name, place in {**written(run_dir, record), **extra_places}.items():
        table.add_row(name, place)
    return table


def written(run_dir: Path, record: Mapping[str, Any]) -> dict[str, str]:
    """What the run left in its directory, relative to it."""
    out: dict[str, str] = {}
    rel = lambda p: str(Path(p).relative_to(run_dir)) if Path(p).is_relative_to(run_dir) else str(p)  # noqa: E731
    if (run_dir / "results.json").is_file():
        out["results"] = "results.json"
    if record.get("best_checkpoint"):
        out["checkpoint"] = rel(record["best_checkpoint"])
    plots = sorted(p.name for p in (run_dir / "plots").glob("*.png"))
    if plots:
        out["plots"] = "plots/{" + ", ".join(plots) + "}"
    for logger_dir in ("csv", "tensorboard", "wandb"):
        if (run_dir / logger_dir).is_dir():
            out[logger_dir] = f"{logger_dir}/"
    return out


def tracker_places(cfg: DictConfig) -> dict[str, str]:
    """Trackers that write outside the run dir (an MLflow tracking URI)."""
    places: dict[str, str] = {}
    for name, node in (cfg.get("logger") or {}).items():
        uri = node.get("tracking_uri") if node else None
        if uri:
            places[str(name)] = str(uri)
    return places


def print_trimmed(renderable: Any, log_width: int | None = None) -> None:
    """Print a rich renderable without the blanks rich pads lines with (they only
    clutter logs); ``log_width`` widens the console when stdout is not a terminal."""
    console = Console()
    if log_width and not console.is_terminal:
        console = Console(width=log_width)
    with console.capture() as captured:
        console.print(renderable)
    print("\n".join(line.rstrip() for line in captured.get().splitlines()), flush=True)


def show_summary(record: Mapping[str, Any], run_dir: Path, extra: Mapping[str, str]) -> None:
    print_trimmed(summary(record, run_dir, extra), log_width=200)
