"""The run's config as loggers take hyperparameters: flat ``a/b/c`` keys, no secrets.

One definition for the Lightning recipe and the boosted-tree recipe."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from dltrain.tracking.redact import redact


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config flattened to ``a/b/c`` keys, as loggers expect hparams."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}/")
        else:
            out[prefix.rstrip("/")] = (
                node if isinstance(node, (int, float, str, bool)) else str(node)
            )

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return redact(out)  # no API keys from the environment in logged hyperparameters
