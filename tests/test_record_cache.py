"""Memory-mapped record caches: resumable parallel decoding, memory that does not grow
with the data, one writer among several processes, disk space checked first."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_image_folder, run_cli, run_dir_of
from dltrain.data.sources.image_folder import ImageFolderDataModule
from dltrain.data.storage import record_cache
from dltrain.data.storage.image_decode import CHUNK
from dltrain.errors import DataError

DECODE = (
    "import sys; from dltrain.data.sources.image_folder import ImageFolderDataModule as D; "
    "D(root=sys.argv[1], cache_dir=sys.argv[2], shape=[3, 16, 16], num_classes=3, "
    "workers=2).prepare_data()"
)


def finished(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if (p / "index.json").is_file())


def written(cache: Path) -> np.ndarray | None:
    """The partial cache's written-records log (1: written), if it exists yet."""
    for partial in cache.glob("*.partial"):
        if (partial / record_cache.CHECKSUMS).is_file():
            return (np.fromfile(partial / record_cache.CHECKSUMS, dtype="<u8") != 0).astype(int)
    return None


def test_a_killed_first_decode_continues_where_it_stopped(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "images", per_class=100)
    reference = shutil.copytree(root, tmp_path / "reference")
    # One image is a FIFO: the worker that opens it waits until the test writes it, so
    # the first pass is killed at a known point (every other chunk written).
    fifo = root / "green" / "50.png"
    png = fifo.read_bytes()
    fifo.unlink()
    os.mkfifo(fifo)
    cache = tmp_path / "cache"
    command = [sys.executable, "-c", DECODE, str(root), str(cache)]
    first = subprocess.Popen(command, start_new_session=True, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while (log := written(cache)) is None or log.sum() < 300 - CHUNK:
        assert time.monotonic() < deadline and first.poll() is None, "decoding stalled"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # the parent and its decoding workers
    first.wait()
    assert not finished(cache)
    left = 300 - int(written(cache).sum())
    assert 0 < left <= CHUNK

    again = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    with open(fifo, "wb") as f:  # blocks until the rerun's worker opens it
        f.write(png)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    decoded, before = map(int, re.search(r"decoded (\d+) images .*continued: (\d+)", err).groups())
    assert (decoded, before) == (left, 300 - left)  # only what the killed pass left

    (resumed,) = finished(cache)
    assert not list(cache.glob("*.partial"))
    whole = ImageFolderDataModule(
        root=str(reference), cache_dir=None, shape=[3, 16, 16], num_classes=3, workers=1
    ).records()
    mapped = record_cache.open_cache(resumed)
    assert torch.equal(mapped.x, whole.x) and torch.equal(mapped.y, whole.y)
    assert mapped.splits == whole.splits == {"train": (0, 300)}


PEAK_RSS = (
    "import resource, subprocess, sys; run = subprocess.run(sys.argv[1:], capture_output=True, "
    "text=True); sys.exit(run.stderr) if run.returncode else "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def test_peak_memory_of_a_run_does_not_grow_with_the_folder(tmp_path: Path) -> None:
    """2,400 images of 3x128x128 (118 MB decoded) against 600: the in-memory design
    held every image (and copies of the splits); the memory-mapped cache holds what
    the short run touches."""
    peaks = {}
    for name, per_class in (("quarter", 200), ("full", 800)):
        root = make_image_folder(tmp_path / name, per_class=per_class)
        cache = tmp_path / f"cache_{name}"
        args = [
            "data=image_folder", f"data.root={root}", "data.num_classes=3",
            "data.shape=[3,128,128]", f"data.cache_dir={cache}", "data.batch_size=32",
            "data.eval_batch_size=32", "data.workers=2", "model=mlp", "model.hidden=[8]",
            "trainer.max_epochs=1", "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
            "logger=none", "callbacks=none", f"hydra.run.dir={tmp_path / 'run' / name}",
        ]  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, str(Path(sys.executable).parent / "dl-train"), *args],
            capture_output=True, text=True, cwd=tmp_path,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        peaks[name] = int(out.stdout.split()[-1]) / 1024  # MB
        (entry,) = finished(cache)
        assert (entry / "records.u8").stat().st_size == 3 * per_class * 3 * 128 * 128
    print(f"peak RSS MB: {peaks}")
    assert peaks["full"] - peaks["quarter"] < 25, peaks  # the decoded data differ by 88 MB


@pytest.mark.parametrize("cached", [True, False], ids=["cache_dir", "no_cache_dir"])
def test_ddp_ranks_decode_the_folder_once(tmp_path: Path, cached: bool) -> None:
    """Rank 0 lists the folder (stats every file for the key) and decodes it; rank 1
    opens what rank 0 wrote. Before, with ``cache_dir=null`` every rank decoded the whole
    folder itself, and with a cache every rank listed and stat-ed every file again."""
    root = make_image_folder(tmp_path / "images", per_class=4)
    cache = tmp_path / "cache"
    out = run_cli(
        [
            "trainer=ddp_cpu",
            "data=image_folder",
            f"data.root={root}",
            "data.num_classes=3",
            "data.shape=[3,8,8]",
            f"data.cache_dir={cache if cached else 'null'}",
            "data.workers=1",
            "data.batch_size=4",
            "data.val_fraction=0",
            "model=mlp",
            "model.hidden=[4]",
            "trainer.max_epochs=1",
            "logger=none",
            "callbacks=none",
        ],  # fmt: skip
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("decoded 12 images") == 1, out.stderr
    log = (run_dir_of(tmp_path) / "train.log").read_text()
    assert log.count(f"image folder {root}: 12 images in 3 classes") == 1, log
    if cached:
        assert len(finished(cache)) == 1 and not list(cache.glob("*.partial"))
    else:
        assert not cache.exists()


def test_a_cache_that_does_not_fit_the_disk_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_image_folder(tmp_path / "images", per_class=100)
    cache = tmp_path / "cache"
    monkeypatch.setattr(record_cache, "free_bytes", lambda folder: 2_000_000)
    dm = ImageFolderDataModule(root=str(root), cache_dir=str(cache), shape=[3, 64, 64],
                               num_classes=3)  # fmt: skip
    with pytest.raises(DataError) as err:
        dm.setup("fit")
    assert str(err.value) == (
        f"the cache needs 3.7 MB in {cache} but its disk has 2.0 MB free — free space "
        "there, set data.cache_dir to a disk with room, or use a smaller data.cache_shape"
    )
    assert [p.suffix for p in cache.iterdir()] == [".lock"]  # nothing written
    (tmp_path / "a_file").write_text("")
    with pytest.raises(DataError) as err:
        record_cache.build(tmp_path / "a_file" / "cache", "k", (1,), np.zeros(1), {}, print)
    assert str(err.value) == (
        f"cannot write the cache in {tmp_path / 'a_file' / 'cache'} (NotADirectoryError: Not a "
        "directory) — set data.cache_dir to a folder you can write to, or null (no cache)"
    )


def test_the_dataset_goes_on_the_device_only_within_its_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``meta`` stands in for an accelerator with 1 MB of memory; the dataset (512 + 256
    samples of 1x16x16 floats) takes 0.8 MB."""
    from types import SimpleNamespace

    from dltrain.data.loading import placement
    from dltrain.data.loading.record_batches import RecordBatches
    from dltrain.data.sources.synthetic import SyntheticDataModule

    monkeypatch.setattr(placement, "device_memory", lambda device: 1_000_000)
    trainer = SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device("meta")), global_rank=0, world_size=1
    )
    placed = {}
    for budget in (0.25, 0.9):
        dm = SyntheticDataModule(shape=[1, 16, 16], num_classes=2, device_budget=budget)
        dm.trainer = trainer
        dm.setup("fit")
        placed[budget] = {s.x.device.type for s in (dm.train_set, dm.val_set, dm.test_set)}
    assert placed == {0.25: {"cpu"}, 0.9: {"meta"}}
    # Over budget on a CUDA device: host memory, batches gathered into pinned memory.
    dm = SyntheticDataModule(shape=[1, 16, 16], num_classes=2)
    dm.setup("fit")
    dm._place(torch.device("cuda"))
    loader = dm.train_dataloader()
    assert dm.train_set.x.device.type == "cpu"
    assert isinstance(loader, RecordBatches) and loader.pin


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pinned_batches_are_pinned() -> None:
    from dltrain.data.loading.record_batches import RecordBatches

    x = torch.arange(40, dtype=torch.uint8).view(10, 4)
    loader = RecordBatches(x, torch.arange(5), torch.arange(0, 10, 2), 2, pin=True,
                           shuffle=False)  # fmt: skip
    xb, yb = next(iter(loader))
    assert xb.is_pinned() and yb.is_pinned() and torch.equal(xb, x[[0, 2]])


def test_mnist_and_cifar_can_be_mapped_from_the_same_cache_format(tmp_path: Path) -> None:
    from conftest import make_cifar10, make_mnist
    from dltrain.data.sources.cifar import CIFAR10DataModule
    from dltrain.data.sources.mnist import MNISTDataModule

    data = make_cifar10(make_mnist(tmp_path / "data"))
    cache = tmp_path / "cache"
    for cls, shape in ((MNISTDataModule, [1, 28, 28]), (CIFAR10DataModule, [3, 32, 32])):
        args = {"data_dir": str(data), "shape": shape, "num_classes": 10}
        plain, mapped = cls(**args), cls(**args, cache_dir=str(cache))
        plain.setup()
        mapped.setup()
        for a, b in ((plain.train_set, mapped.train_set), (plain.test_set, mapped.test_set)):
            assert torch.equal(a.rows(), b.rows()) and torch.equal(a.y, b.y)
        assert torch.equal(plain.mean, mapped.mean) and torch.equal(plain.std, mapped.std)
        assert mapped.train_set.x is mapped.test_set.x  # one mapped record array
        # A second run maps the cache instead of reading the dataset's files.
        (entry,) = [p for p in finished(cache) if record_cache.open_cache(p).shape == tuple(shape)]
        (entry / "records.u8").write_bytes(b"\x07" * (entry / "records.u8").stat().st_size)
        again = cls(**args, cache_dir=str(cache))
        again.setup()
        assert (again.test_set.rows() == 7).all()
    assert len(finished(cache)) == 2


def _interrupted_fill(images: np.ndarray):
    """A first pass that writes and marks every record, then dies (as a killed process)."""

    def fill(writer: record_cache.Writer) -> None:
        records = writer.records()
        records[:] = images
        records.flush()
        writer.mark(np.arange(len(images)))
        raise KeyboardInterrupt

    return fill


def _refill(images: np.ndarray, refilled: list[int]):
    def fill(writer: record_cache.Writer) -> None:
        todo = writer.todo()
        refilled.extend(todo.tolist())
        records = writer.records()
        records[todo] = images[todo]
        records.flush()
        writer.mark(todo)

    return fill


def test_a_torn_record_is_decoded_again_not_served_as_zeros(tmp_path: Path) -> None:
    """A power loss after a record was marked written but before its bytes reached the
    disk: the record reads back as zeros. Before: it was served as a black image. Now its
    checksum does not match and the next pass decodes it again."""
    images = np.random.default_rng(0).integers(1, 256, size=(10, 1, 4, 4), dtype=np.uint8)
    labels, splits = np.arange(10) % 2, {"train": (0, 10)}
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        record_cache.build(cache, "k", (1, 4, 4), labels, splits, _interrupted_fill(images))
    assert written(cache).tolist() == [1] * 10
    with open(cache / "k.partial" / "records.u8", "r+b") as f:  # records 3 and 7 torn
        for i in (3, 7):
            f.seek(i * 16)
            f.write(bytes(16))
    refilled: list[int] = []
    opened = record_cache.build(cache, "k", (1, 4, 4), labels, splits, _refill(images, refilled))
    assert refilled == [3, 7]
    assert torch.equal(opened.x, torch.from_numpy(images))


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS])
def test_a_file_system_without_flock_locks_with_a_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, code: int
) -> None:
    """Some network and FUSE file systems refuse ``flock``. Before: the ``OSError``
    escaped (a traceback, "looks like a bug"). Now: one warning line, and the cache is
    built under a lock file."""

    def refuse(fd: object, operation: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fcntl, "flock", refuse)
    images = np.arange(32, dtype=np.uint8).reshape(2, 1, 4, 4)
    refilled: list[int] = []
    with caplog.at_level(logging.WARNING):
        opened = record_cache.build(
            tmp_path / "c", "k", (1, 4, 4), np.zeros(2), {"train": (0, 2)},
            _refill(images, refilled),
        )  # fmt: skip
    assert torch.equal(opened.x, torch.from_numpy(images)) and refilled == [0, 1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"{tmp_path / 'c'} does not support flock ({errno.errorcode[code]}): the record "
        "cache is locked with a lock file instead"
    ]
    assert not list((tmp_path / "c").glob("*.soft"))  # released
