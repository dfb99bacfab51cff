"""Decoding image files into a record cache: worker processes, progress, resumable.

Each worker writes the images it decodes straight into their records of the cache's
record file (``os.pwrite``: no map, so a worker's resident memory does not grow with
what it wrote); the parent marks a chunk written once its worker reports it, so a
killed pass loses at most the chunks in flight. Workers use PIL and
numpy only (no torch ops): they are forked from a process whose torch thread pools
must not be used after a fork. ``multiprocessing.Pool`` rather than torch's DataLoader:
nothing is collated or sent back, each worker writes in place.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from dltrain.data.storage.record_cache import Writer
from dltrain.errors import ConfigError, DataError

#: Images a worker decodes per task (the unit of progress and of resuming).
CHUNK = 64
#: Seconds between progress lines.
PROGRESS_EVERY_S = 5.0

_worker: dict[str, object] = {}


def default_workers() -> int:
    """One decoding process per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def decode_image(path: str, shape: Sequence[int]) -> np.ndarray:
    """One image file as a ``(C, H, W)`` ``uint8`` array: converted to grayscale (1
    channel) or RGB (3) and resized to ``shape`` with PIL's antialiased bilinear filter."""
    from PIL import Image

    mode = {1: "L", 3: "RGB"}.get(int(shape[0]))
    if mode is None:
        raise ConfigError(
            f"data.shape={list(shape)} asks for {shape[0]} channels",
            "use 1 (grayscale) or 3 (RGB) channels for image folders",
        )
    with open(path, "rb") as f:  # one read of the whole file (also FIFOs, network mounts)
        data = f.read()
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert(mode).resize((int(shape[2]), int(shape[1])), Image.Resampling.BILINEAR)
        pixels = np.asarray(img)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def fill_images(writer: Writer, paths: Sequence[str], workers: int | None = None) -> None:
    """Decode ``paths[i]`` into record ``i`` for every record not written yet."""
    todo = writer.todo()
    if len(todo) == 0:
        return
    shape = writer.shape
    tasks = [
        (chunk.tolist(), [paths[int(i)] for i in chunk])
        for chunk in np.array_split(todo, -(-len(todo) // CHUNK))
    ]
    workers = max(1, min(workers or default_workers(), len(tasks)))
    progress = _Progress(len(todo), writer.count, workers)
    bad: list[tuple[str, str]] = []
    for done, failed in _run(tasks, workers, (str(writer.records_path), writer.count, shape)):
        writer.mark(done)
        bad.extend(failed)
        progress.update(len(done) + len(failed))
    if bad:
        raise _unreadable(sorted(bad))
    progress.finish(writer.folder.parent)


def _run(
    tasks: list[tuple[list[int], list[str]]], workers: int, init: tuple
) -> Iterator[tuple[list[int], list[tuple[str, str]]]]:
    if workers == 1:
        _init(*init)
        yield from map(_decode_chunk, tasks)
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_init, initargs=init) as pool:
        yield from pool.imap_unordered(_decode_chunk, tasks)


def _init(records_path: str, count: int, shape: tuple[int, ...]) -> None:
    if "fd" in _worker:  # in-process decoding, called again
        os.close(_worker["fd"])  # type: ignore[arg-type]
    _worker["fd"] = os.open(records_path, os.O_WRONLY)
    _worker["shape"] = shape


def _decode_chunk(task: tuple[list[int], list[str]]) -> tuple[list[int], list[tuple[str, str]]]:
    """Decode one chunk into the shared record file: (written indices, unreadable files)."""
    from PIL import Image

    fd = _worker["fd"]
    shape = _worker["shape"]
    size = int(np.prod(shape))  # type: ignore[arg-type]
    done: list[int] = []
    bad: list[tuple[str, str]] = []
    for i, path in zip(*task, strict=True):
        try:
            pixels = decode_image(path, shape)  # type: ignore[arg-type]
        except (OSError, Image.DecompressionBombError) as ex:  # and UnidentifiedImageError
            bad.append((path, type(ex).__name__))
            continue
        os.pwrite(fd, np.ascontiguousarray(pixels).data, i * size)  # type: ignore[arg-type]
        done.append(i)
    return done, bad


def _unreadable(bad: Iterable[tuple[str, str]]) -> DataError:
    bad = list(bad)
    if len(bad) == 1:
        path, kind = bad[0]
        return DataError(f"cannot read image {path} ({kind})", "remove or replace the file")
    shown = ", ".join(f"{p} ({k})" for p, k in bad[:10])
    more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
    return DataError(f"cannot read {len(bad)} images: {shown}{more}", "remove or replace the files")


class _Progress:
    """Lines on stderr while decoding: done/total, images/s, ETA; one summary line."""

    def __init__(self, todo: int, total: int, workers: int) -> None:
        self.todo, self.total, self.workers = todo, total, workers
        self.done = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S or self.done >= self.todo:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        eta = (self.todo - self.done) / max(rate, 1e-9)
        written = self.total - self.todo + self.done
        print(
            f"decoding images: {written:,}/{self.total:,} ({100 * written / self.total:.0f}%), "
            f"{rate:,.0f} images/s, ETA {_clock(eta)}",
            file=sys.stderr,
            flush=True,
        )

    def finish(self, where: object) -> None:
        took = time.monotonic() - self.start
        before = self.total - self.todo
        resumed = f" (continued: {before:,} were already there)" if before else ""
        processes = f"{self.workers} process{'es' if self.workers > 1 else ''}"
        print(
            f"decoded {self.todo:,} images in {took:.1f} s ({self.todo / max(took, 1e-9):,.0f} "
            f"images/s, {processes}) into {where}{resumed}",
            file=sys.stderr,
            flush=True,
        )


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
