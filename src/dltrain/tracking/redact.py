"""Keeping secrets from the environment out of what a run writes.

Configs are stored unresolved (``.hydra/config.yaml``, checkpoints), so
``${oc.env:WANDB_API_KEY}`` stays a reference there. Where the resolved config leaves the
process (the hyperparameters handed to loggers: ``hparams.yaml``, TensorBoard, trackers;
the config tree printed and saved in the run directory) ``redact``/``redact_tree`` blank
values whose key looks secret, and any value that contains the value of a
secret-looking environment variable.
"""

from __future__ import annotations

import os
import re
from typing import Any

SECRET_NAME = re.compile(r"api[_-]?key|token|secret|password|passwd|credential", re.IGNORECASE)
REDACTED = "<redacted>"
#: Shorter environment values are too likely to occur by chance (``1``, ``true``).
MIN_SECRET_LEN = 6


def env_secrets() -> list[str]:
    return [
        value
        for name, value in os.environ.items()
        if SECRET_NAME.search(name) and len(value) >= MIN_SECRET_LEN
    ]


def redact(flat: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``flat`` with secret-looking keys and secret values replaced."""
    secrets = env_secrets()
    out: dict[str, Any] = {}
    for key, value in flat.items():
        text = str(value)
        hidden = SECRET_NAME.search(key) or any(s in text for s in secrets)
        out[key] = REDACTED if hidden and value not in (None, "") else value
    return out


def redact_tree(node: Any, secrets: list[str] | None = None) -> Any:
    """``redact`` for nested dicts and lists (a resolved config as plain containers)."""
    secrets = env_secrets() if secrets is None else secrets
    if isinstance(node, dict):
        return {
            k: REDACTED
            if SECRET_NAME.search(str(k)) and v not in (None, "") and not isinstance(v, dict)
            else redact_tree(v, secrets)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [redact_tree(v, secrets) for v in node]
    if isinstance(node, str) and any(s in node for s in secrets):
        return REDACTED
    return node
