"""On-disk caches of fixed-size ``uint8`` records, opened memory-mapped.

One cache is one folder named by a key over the content it was made from::

    <cache_dir>/<key>/records.u8   N records of prod(shape) bytes, record i at i * size
                      labels.i64   N int64 labels (little-endian)
                      index.json   version, shape, count, splits {name: [start, stop]}

The records are opened with ``torch.from_file`` (a private memory map): a run's
resident memory holds the pages it touches, the page cache what fits, the disk the
rest, so memory does not grow with the dataset. Splits are ``[start, stop)`` ranges of
the record array, served as index arrays, never copies.

Writing is atomic and resumable. A cache is filled in ``<key>.partial/``, where
``checksums.u64`` holds one value a record: 0 until the record is in ``records.u8``,
then ``2**32 + crc32`` of its bytes. A killed pass leaves it, and the next pass fills
only the records still unwritten. The order survives a power loss: a record's bytes are
``fsync``-ed before its checksum is set (and the checksums are ``fsync``-ed in turn),
and a resumed pass checks every written record against its checksum, so a torn write
(marked, but its bytes never reached the disk: zeros) is decoded again instead of being
served as a black image. When every record is in, the folder is renamed to ``<key>``:
readers never see half a cache. One process at a time fills a cache: ``<key>.lock`` is
held with ``filelock`` (``flock``) while writing, so DDP ranks, sweep jobs or two
terminals that start on the same data wait for the first writer and then open what it
wrote; where the file system refuses ``flock`` (some network and FUSE mounts: ENOLCK,
EOPNOTSUPP, ENOSYS), a lock file (``filelock.SoftFileLock``) stands in, with one
warning line.

Hand-written rather than Arrow/``datasets``: a record here is one fixed-size array, so
the whole format is a raw array file the OS maps, and a batch stays one gather.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from filelock import BaseFileLock, FileLock, SoftFileLock
from torch import Tensor

from dltrain.errors import DataError

log = logging.getLogger(__name__)

#: Bump when the on-disk layout changes.
FORMAT_VERSION = 1
RECORDS, LABELS, INDEX, CHECKSUMS = "records.u8", "labels.i64", "index.json", "checksums.u64"
#: ``flock`` errors that mean "not supported here" (rather than "held" or "not allowed").
NO_FLOCK = frozenset({errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL})
#: Bytes read at a time when streaming over the records (statistics).
CHUNK_BYTES = 4 * 2**20


@dataclass
class RecordSet:
    """An opened cache: ``x`` is ``(N, *shape)`` ``uint8`` memory-mapped from ``path``."""

    path: Path
    x: Tensor
    y: Tensor
    splits: dict[str, tuple[int, int]]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])


class Writer:
    """What a fill function gets: the record array to write into (memory-mapped, shared
    with worker processes through the file) and the log of what is written."""

    def __init__(self, folder: Path, count: int, shape: tuple[int, ...]) -> None:
        self.folder = folder
        self.count = count
        self.shape = shape
        self.size = math.prod(shape)
        self.records_path = folder / RECORDS
        self._fd = os.open(self.records_path, os.O_RDONLY)
        self._sums = np.memmap(folder / CHECKSUMS, dtype="<u8", mode="r+", shape=(count,))

    def todo(self) -> np.ndarray:
        """Indices of the records not written yet, ascending."""
        return np.flatnonzero(self._sums == 0)

    def mark(self, index: np.ndarray | list[int]) -> None:
        """Record ``index`` as written: call only once their bytes are in the file
        (``os.pwrite`` or a shared map). The bytes reach the disk first, then their
        checksums, so no crash can leave a record marked whose bytes are not there."""
        index = np.asarray(index, dtype=np.int64)
        if len(index) == 0:
            return
        os.fsync(self._fd)  # the records' bytes (also those written through a map)
        self._sums[index] = [checksum(self._read(i)) for i in index]
        self._sums.flush()
        _fsync(self.folder / CHECKSUMS)

    def verify(self) -> int:
        """Unmark the written records whose bytes do not match their checksum (a write
        torn by a power loss); returns how many."""
        done = np.flatnonzero(self._sums != 0)
        torn = [int(i) for i in done if checksum(self._read(i)) != self._sums[i]]
        if torn:
            self._sums[torn] = 0
            self._sums.flush()
        return len(torn)

    def _read(self, i: int) -> bytes:
        return os.pread(self._fd, self.size, int(i) * self.size)

    def records(self) -> np.memmap:
        """The ``(N, *shape)`` record array, writable."""
        return np.memmap(
            self.records_path, dtype=np.uint8, mode="r+", shape=(self.count, *self.shape)
        )

    def close(self) -> None:
        self._sums.flush()
        del self._sums
        os.close(self._fd)


def checksum(record: bytes) -> int:
    """A written record's mark: never 0 (0 means "not written")."""
    return (1 << 32) | zlib.crc32(record)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: ``fill(writer)`` writes every record in ``writer.todo()`` and marks it.
Fill = Callable[[Writer], None]


def cache_bytes(count: int, shape: tuple[int, ...]) -> int:
    """Disk bytes a cache of ``count`` records of ``shape`` takes (records + labels)."""
    return count * (math.prod(shape) + 8)


def free_bytes(folder: Path) -> int:
    """Free bytes on the disk that holds ``folder`` (a function so tests can stand in)."""
    return shutil.disk_usage(folder).free


def build(
    cache_dir: Path | None,
    key: str,
    shape: tuple[int, ...],
    labels: np.ndarray,
    splits: dict[str, tuple[int, int]],
    fill: Fill,
) -> RecordSet:
    """Open the cache ``key`` under ``cache_dir``, filling it first if needed.

    ``cache_dir=None``: the records go to a private temporary folder that is removed
    once opened (the map keeps the data until the process ends).
    """
    if cache_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="dltrain-records-"))
        try:
            return build(tmp, key, shape, labels, splits, fill)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    final = cache_dir / key
    if (final / INDEX).is_file():
        return open_cache(final)
    lock = _acquire(cache_dir, key)
    try:
        if (final / INDEX).is_file():  # another process wrote it while this one waited
            return open_cache(final)
        partial = cache_dir / f"{key}.partial"
        writer = _start(partial, len(labels), shape)
        try:
            fill(writer)
            missing = len(writer.todo())
        finally:
            writer.close()
        if missing:
            raise RuntimeError(f"{missing} records of {partial} were not written")
        _finish(partial, final, shape, labels, splits)
    finally:
        lock.release()
    return open_cache(final)


def exists(cache_dir: Path, key: str) -> bool:
    """Whether the finished cache ``key`` is under ``cache_dir``."""
    return (cache_dir / key / INDEX).is_file()


def open_cache(folder: Path) -> RecordSet:
    """Open a finished cache memory-mapped (the records are not read here)."""
    meta = json.loads((folder / INDEX).read_text())
    shape, count = tuple(meta["shape"]), int(meta["count"])
    if count == 0:
        x = torch.empty((0, *shape), dtype=torch.uint8)
    else:
        size = count * math.prod(shape)
        x = torch.from_file(str(folder / RECORDS), shared=False, size=size, dtype=torch.uint8)
        x = x.view(count, *shape)
    y = torch.from_numpy(np.fromfile(folder / LABELS, dtype="<i8").astype(np.int64))
    splits = {name: (int(a), int(b)) for name, (a, b) in meta["splits"].items()}
    return RecordSet(folder, x, y, splits)


def iter_rows(path: Path, shape: tuple[int, ...], index: Tensor) -> Iterator[Tensor]:
    """The records ``index`` (ascending) in chunks, read from the file rather than the
    map, so a pass over the whole split (statistics) leaves the page cache holding the
    pages, not this process's resident memory."""
    size = math.prod(shape)
    rows = max(1, CHUNK_BYTES // size)
    index = index.sort().values
    with open(path / RECORDS, "rb") as f:
        for part in index.split(rows):
            lo, hi = int(part[0]), int(part[-1]) + 1
            if hi - lo > 4 * rows:  # sparse: read record by record
                chunk = np.stack([_read(f, int(i), 1, size) for i in part])
            else:
                chunk = _read(f, lo, hi - lo, size)[part.numpy() - lo]
            yield torch.from_numpy(chunk.reshape(len(part), *shape))


def _read(f, start: int, count: int, size: int) -> np.ndarray:
    f.seek(start * size)
    return np.frombuffer(f.read(count * size), dtype=np.uint8).reshape(count, size)


def _acquire(cache_dir: Path, key: str) -> BaseFileLock:
    """An exclusive lock on ``<key>.lock``, waiting for the process that holds it:
    ``flock`` (released when the process dies), or, where the file system refuses
    ``flock``, a lock file ``<key>.lock.soft`` (filelock removes one a dead process left)."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = cache_dir / f"{key}.lock"
        refused = _flock_refused(path)
        if refused is None:
            lock: BaseFileLock = FileLock(path)
        else:
            log.warning(
                "%s does not support flock (%s): the record cache is locked with a lock "
                "file instead",
                cache_dir,
                refused,
            )
            lock = SoftFileLock(cache_dir / f"{key}.lock.soft")
        lock.acquire()
    except OSError as ex:
        raise DataError(
            f"cannot write the cache in {cache_dir} ({type(ex).__name__}: {ex.strerror})",
            "set data.cache_dir to a folder you can write to, or null (no cache)",
        ) from ex
    return lock


def _flock_refused(path: Path) -> str | None:
    """The error's name when the file system of ``path`` refuses ``flock``, else ``None``.

    Asked once here, without waiting, rather than left to filelock: its versions differ
    on such a file system (retry forever as if the lock were held, raise, or turn to a
    lock file on ENOSYS alone, with a warning of its own)."""
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as ex:  # EWOULDBLOCK: another process holds it, so flock works
            return errno.errorcode[ex.errno] if ex.errno in NO_FLOCK else None
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def _start(partial: Path, count: int, shape: tuple[int, ...]) -> Writer:
    """Create ``partial`` or continue the one a killed pass left (same key: same plan),
    first decoding again what a power loss tore; refuse first when the disk lacks room
    for what is still to write."""
    size = count * math.prod(shape)
    resumable = (
        (partial / RECORDS).is_file()
        and (partial / CHECKSUMS).is_file()
        and (partial / RECORDS).stat().st_size == size
        and (partial / CHECKSUMS).stat().st_size == 8 * count
    )
    done = 0
    if resumable:
        writer = Writer(partial, count, shape)
        torn = writer.verify()
        if torn:
            log.warning("%d records of %s were torn by a crash: decoding them again", torn, partial)
        done = count - len(writer.todo())
        writer.close()
    need, free = cache_bytes(count - done, shape), free_bytes(partial.parent)
    if need > free:
        raise DataError(
            f"the cache needs {_size(need)} in {partial.parent} but its disk has "
            f"{_size(free)} free",
            "free space there, set data.cache_dir to a disk with room, "
            "or use a smaller data.cache_shape",
        )
    if not resumable:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        with open(partial / RECORDS, "wb") as f:
            f.truncate(size)  # sparse: blocks are allocated as records are written
        with open(partial / CHECKSUMS, "wb") as f:
            f.truncate(8 * count)
    return Writer(partial, count, shape)


def _finish(
    partial: Path,
    final: Path,
    shape: tuple[int, ...],
    labels: np.ndarray,
    splits: dict[str, tuple[int, int]],
) -> None:
    """Labels and index next to the records, everything on disk, then one rename."""
    np.asarray(labels, dtype="<i8").tofile(partial / LABELS)
    meta = {
        "version": FORMAT_VERSION,
        "shape": list(shape),
        "count": len(labels),
        "splits": {k: list(v) for k, v in splits.items()},
    }
    (partial / INDEX).write_text(json.dumps(meta))
    (partial / CHECKSUMS).unlink()
    for name in (RECORDS, LABELS, INDEX):
        with open(partial / name, "rb") as f:
            os.fsync(f.fileno())
    partial.rename(final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"
