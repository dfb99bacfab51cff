"""Loading checkpoints safely: tensors and plain values only, clear errors otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dltrain.errors import ConfigError, DataError


def load_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``: never unpickles arbitrary objects."""
    import pickle
    import zipfile

    import torch

    if not path.is_file():
        raise ConfigError(
            f"checkpoint {path} does not exist",
            "pass ckpt_path=<run dir>/checkpoints/<file>.ckpt of a finished or interrupted run",
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as ex:
        detail = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise DataError(
            f"checkpoint {path} is truncated, corrupt or not a plain-tensor checkpoint "
            f"({detail[:160]})",
            "use another checkpoint (e.g. last.ckpt or the best one in the same folder)",
        ) from ex
