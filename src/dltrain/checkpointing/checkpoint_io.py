"""Checkpoints on disk: written atomically as plain values, loaded as plain tensors,
clear errors otherwise."""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from dltrain.data.moved import moved_target
from dltrain.errors import ConfigError, DataError, RunError

#: Where Lightning puts what ``save_hyperparameters()`` captured (the module's, the data
#: module's), and the key of its type when that was an OmegaConf container.
HPARAM_KEYS = {
    "hyper_parameters": "hparams_type",
    "datamodule_hyper_parameters": "datamodule_hparams_type",
}
KEEP_OLD = "use another checkpoint (e.g. last.ckpt or the best one in the same folder)"


def load_checkpoint(path: Path, map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``: never unpickles arbitrary objects.
    ``mmap=True`` maps the tensors instead of reading them (a check costs no copy)."""
    import zipfile

    import torch

    if not path.is_file():
        raise ConfigError(
            f"checkpoint {path} does not exist",
            "pass ckpt_path=<run dir>/checkpoints/<file>.ckpt of a finished or interrupted run",
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as ex:
        raise unreadable(path, ex) from ex
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("dltrain_config"), dict):
        checkpoint["dltrain_config"] = moved_targets(checkpoint["dltrain_config"])
    return checkpoint


def moved_targets(node: Any) -> Any:
    """``node`` with every ``_target_`` of a moved module renamed to where it lives now."""
    if isinstance(node, dict):
        return {k: _renamed(v) if k == "_target_" else moved_targets(v) for k, v in node.items()}
    if isinstance(node, list):
        return [moved_targets(v) for v in node]
    return node


def _renamed(target: Any) -> Any:
    return moved_target(target) if isinstance(target, str) else target


def unreadable(path: Path, ex: BaseException) -> DataError:
    """Why ``weights_only`` loading refused ``path``, from what the file holds: pickled
    objects (named by key and type), or a damaged file. Only a file that does not
    parse, or whose bytes fail their checksums, is called truncated or corrupt."""
    detail = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
    if isinstance(ex, OSError) and ex.errno is not None:  # e.g. no permission to read it
        return DataError(f"checkpoint {path} cannot be read ({detail[:160]})", KEEP_OLD)
    objects = pickled_objects(path)
    if objects:
        return DataError(
            f"checkpoint {path} is not a plain-tensor checkpoint: it holds pickled objects, "
            f"which weights_only loading does not run ({_show(objects)})",
            "dl-train reads checkpoints of plain values only (tensors, numbers, strings, "
            "lists, dicts); if you trust this file, load it with torch.load(path, "
            "weights_only=False), delete those keys and torch.save it again",
        )
    if objects is None or not _intact(path):
        return DataError(f"checkpoint {path} is truncated or corrupt ({detail[:160]})", KEEP_OLD)
    return DataError(f"checkpoint {path} cannot be read ({detail[:160]})", KEEP_OLD)


def pickled_objects(path: Path) -> list[tuple[str, str]] | None:
    """``(key, type)`` of each value in a checkpoint that ``weights_only`` loading
    refuses to build, outermost first; ``None`` when the file does not parse.

    The pickle is read with stand-ins for every class it names: nothing is imported
    and no code of the file runs. Which names are refused is torch's own verdict
    (``get_unsafe_globals_in_checkpoint``)."""
    import zipfile

    import torch

    try:
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        if not unsafe:
            return []
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            with archive.open(name) as f:
                tree = _StandInUnpickler(f, unsafe).load()
    except Exception:  # noqa: BLE001 - not a zip, no pickle, or a truncated one
        return None
    found: list[tuple[str, str]] = []
    _collect(tree, "", found)
    return found


class _StandIn:
    """What a class named in a checkpoint becomes while it is inspected: it takes any
    arguments and state and keeps none."""

    dotted = ""
    refused = False

    def __new__(cls, *args: Any, **kwargs: Any) -> _StandIn:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _StandInUnpickler(pickle.Unpickler):
    def __init__(self, f: Any, unsafe: set[str]) -> None:
        super().__init__(f)
        self.unsafe = unsafe
        self.classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        import _compat_pickle  # Python 2 names of protocol 2 pickles, as pickle maps them
        import collections

        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        dotted = f"{module}.{name}"
        if dotted == "collections.OrderedDict":  # keep looking inside state dicts
            return collections.OrderedDict
        if dotted not in self.classes:
            attrs = {"dotted": dotted, "refused": dotted in self.unsafe}
            self.classes[dotted] = type(name, (_StandIn,), attrs)
        return self.classes[dotted]

    def persistent_load(self, pid: Any) -> None:
        return None  # a tensor's storage: not read


def _collect(node: Any, where: str, found: list[tuple[str, str]]) -> None:
    if isinstance(node, _StandIn) or (isinstance(node, type) and issubclass(node, _StandIn)):
        if node.refused:
            found.append((where or "(the whole file)", node.dotted))
        return
    if isinstance(node, dict):
        for key, value in node.items():
            _collect(value, f"{where}.{key}" if where else str(key), found)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _collect(value, f"{where}[{i}]", found)


def _show(objects: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{key}: {kind}" for key, kind in objects[:5])
    return shown + (f" and {len(objects) - 5} more" if len(objects) > 5 else "")


def _intact(path: Path) -> bool:
    """Every member of the zip reads back and matches its CRC (the error path only)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except Exception:  # noqa: BLE001
        return False


def plain_hyperparameters(
    checkpoint: dict[str, Any], config_values: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """``checkpoint`` with what ``save_hyperparameters()`` captured made plain values.

    A LightningModule written as Lightning's docs show saves its constructor's
    arguments, objects included: the net, the optimizer and scheduler factories. Each
    object is stored as the plain config value it was built from (``config_values``:
    per key of ``HPARAM_KEYS``, argument name -> value), so the checkpoint stays
    ``weights_only`` loadable and says how to rebuild it; an object with no config value
    is left out (``load_from_checkpoint(path, name=...)`` takes it back)."""
    from lightning.pytorch.utilities import rank_zero_warn
    from omegaconf import OmegaConf

    out = dict(checkpoint)
    for key, type_key in HPARAM_KEYS.items():
        values = out.get(key)
        if values is None:
            continue
        given = config_values.get(key, {})
        kept: dict[str, Any] = {}
        for name, value in dict(values).items():
            if OmegaConf.is_config(value):
                value = _container(value)
            if is_plain(value):
                kept[name] = value
            elif name in given:
                kept[name] = given[name]
            else:
                rank_zero_warn(
                    f"checkpoints leave out {key}['{name}'] (a {type(value).__name__}, "
                    "not plain data): pass it back to load_from_checkpoint(path, "
                    f"{name}=...)"
                )
        out[key] = kept
        out.pop(type_key, None)
    return out


def _container(value: Any) -> Any:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(value, resolve=True)
    except Exception:  # noqa: BLE001 - an interpolation only a running Hydra job resolves
        return OmegaConf.to_container(value, resolve=False)


_LEAVES = (type(None), bool, int, float, complex, str, bytes)


def is_plain(value: Any) -> bool:
    """Would ``weights_only`` loading rebuild ``value``? Exact types only: a numpy
    float or a named tuple is a subclass of a plain type and still pickled as code."""
    import torch

    if type(value) in _LEAVES or isinstance(value, torch.Tensor):
        return True
    if type(value) in (torch.Size, torch.dtype, torch.device):
        return True
    if type(value) in (list, tuple):
        return all(is_plain(v) for v in value)
    if type(value) is dict:
        return all(type(k) in (str, int) and is_plain(v) for k, v in value.items())
    return False


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with three guarantees it does not give by itself.

    Saving writes plain values only: what ``save_hyperparameters()`` captured as objects
    is stored as the config it was built from (``plain_hyperparameters``), and a file
    that would still hold pickled objects is refused, naming them, before it replaces
    the previous checkpoint.

    Saving writes a temp file in the checkpoint's own folder, fsyncs it and renames it
    over the target: a kill at any moment leaves the previous checkpoint or the new one,
    never half a file. (Lightning's own ``_atomic_save`` goes through an fsspec
    transaction whose temp file lives in the system temp dir, so the final move can be a
    copy across file systems, and nothing is fsynced.)

    Loading always uses ``weights_only=True`` (also for ``trainer.fit(ckpt_path=...)``,
    ``test`` and ``validate``), and a file it refuses becomes a ``DataError`` that says
    what the file holds.

    Args:
        hyperparameters: per key of ``HPARAM_KEYS``, the plain config value of each
            constructor argument, stored in place of an object built from it.
    """

    def __init__(self, hyperparameters: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        self.hyperparameters = dict(hyperparameters or {})

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        import torch

        checkpoint = plain_hyperparameters(checkpoint, self.hyperparameters)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            objects = pickled_objects(tmp)
            if objects:
                raise RunError(
                    f"checkpoint {target} would hold pickled objects, which weights_only "
                    f"loading refuses ({_show(objects)})",
                    "keep checkpoint contents to plain values (tensors, numbers, strings, "
                    "lists, dicts), e.g. in on_save_checkpoint or a callback's state_dict",
                )
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
