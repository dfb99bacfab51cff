"""Finding and reading dataset files through torchvision, with errors a user can act on."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dltrain.errors import DataError


def check_files(folder: Path, names: Sequence[str], dataset: str, root: Path) -> None:
    """Fail with the list of expected files (and how to get them) if any is missing."""
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"{dataset} not found: expected {', '.join(missing)} in {folder}",
            f"set paths.data_dir to the folder that holds {dataset}'s files "
            f"(now {root}), or add data.download=true when online",
        )


def load_torchvision(name: str, root: Path, train: bool, download: bool) -> Any:
    """Instantiate ``torchvision.datasets.<name>``; turn its failures into ``DataError``."""
    from torchvision import datasets

    cls = getattr(datasets, name)
    try:
        return cls(root=str(root), train=train, download=download)
    except (OSError, RuntimeError, ValueError, AssertionError, EOFError) as ex:
        action = "download" if download else "read"
        detail = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise DataError(
            f"could not {action} {name} under {root}: {detail}",
            "check the files (re-download them, or point paths.data_dir at a good copy)"
            if not download
            else "check the network connection, or copy the files there by hand",
        ) from ex
