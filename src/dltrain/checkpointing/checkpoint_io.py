"""Checkpoints on disk: written atomically, loaded as plain tensors, clear errors otherwise."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.strategies import FSDPStrategy

from dltrain.errors import ConfigError, DataError


def load_checkpoint(path: Path, map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``: never unpickles arbitrary objects.
    ``mmap=True`` maps the tensors instead of reading them (a check costs no copy)."""
    import pickle
    import zipfile

    import torch

    if not path.is_file():
        raise ConfigError(
            f"checkpoint {path} does not exist",
            "pass ckpt_path=<run dir>/checkpoints/<file>.ckpt of a finished or interrupted run",
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as ex:
        detail = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise DataError(
            f"checkpoint {path} is truncated, corrupt or not a plain-tensor checkpoint "
            f"({detail[:160]})",
            "use another checkpoint (e.g. last.ckpt or the best one in the same folder)",
        ) from ex


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with two guarantees it does not give by itself.

    Saving writes a temp file in the checkpoint's own folder, fsyncs it and renames it
    over the target: a kill at any moment leaves the previous checkpoint or the new one,
    never half a file. (Lightning's own ``_atomic_save`` goes through an fsspec
    transaction whose temp file lives in the system temp dir, so the final move can be a
    copy across file systems, and nothing is fsynced.)

    Loading always uses ``weights_only=True`` (also for ``trainer.fit(ckpt_path=...)``,
    ``test`` and ``validate``), and a truncated or corrupt file becomes a ``DataError``.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        import torch

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_checkpoint(Path(path), map_location=map_location or "cpu")


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class WeightsOnlyFSDPStrategy(FSDPStrategy):
    """Lightning's ``FSDPStrategy`` (``trainer=fsdp``), whose full single-file checkpoints
    are opened with ``weights_only=True`` first. Why: Lightning's FSDP loader reads them
    with its own lazy unpickler, which would run code a checkpoint carries; the check
    maps the file (``mmap``), so it costs no second copy in memory."""

    def load_checkpoint(self, checkpoint_path: Any, weights_only: bool | None = None) -> Any:
        path = Path(checkpoint_path)
        if path.is_file():  # a full checkpoint (a sharded one is a folder of tensors)
            load_checkpoint(path, mmap=True)
        return super().load_checkpoint(checkpoint_path, weights_only=weights_only)
