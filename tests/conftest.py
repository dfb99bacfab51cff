"""Fixtures that write real dataset files and run the CLI as a user does."""

from __future__ import annotations

import gzip  # noqa: F401  (kept for fixtures that want compressed IDX files)
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHARED_DATA = ROOT.parent / "shared" / "datasets"


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """IDX3 (magic 0x00000803): big-endian count, rows, cols, then uint8 pixels."""
    n, rows, cols = images.shape
    path.write_bytes(struct.pack(">iiii", 0x803, n, rows, cols) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """IDX1 (magic 0x00000801): big-endian count, then uint8 labels."""
    path.write_bytes(struct.pack(">ii", 0x801, len(labels)) + labels.astype(np.uint8).tobytes())


def make_mnist(root: Path, folder: str = "MNIST", n_train: int = 40, n_test: int = 20) -> Path:
    """A tiny MNIST in torchvision's layout: class k images are bright in row band k."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, size=(n, 28, 28))
        for i, k in enumerate(labels):
            images[i, 2 * k + 4 : 2 * k + 7, 4:24] = 250
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def make_cifar10(root: Path, n_per_batch: int = 10, n_test: int = 10) -> Path:
    """A tiny CIFAR-10 in torchvision's pickle layout (5 train batches + test)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def dump(name: str, n: int) -> None:
        batch = {
            "data": rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8),
            "labels": [int(v) for v in np.arange(n) % 10],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)

    for i in range(1, 6):
        dump(f"data_batch_{i}", n_per_batch)
    dump("test_batch", n_test)
    meta = {"label_names": [f"class{i}" for i in range(10)]}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f)
    return root


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    return make_mnist(tmp_path / "data")


def run_cli(
    args: Sequence[str],
    cwd: Path,
    cmd: str = "dl-train",
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """Run a console script of the installed package the way a user would."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    full_env.pop("DLTRAIN_SHOW_TRACEBACK", None)
    return subprocess.run(
        [str(BIN / cmd), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_dir_of(base: Path, task: str = "train") -> Path:
    """The single run directory under ``base/outputs/<task>/runs``."""
    runs = sorted((base / "outputs" / task / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def make_image_folder(
    root: Path, classes: Sequence[str] = ("blue", "green", "red"), per_class: int = 8
) -> Path:
    """A folder of real PNGs, ``root/<class>/<i>.png``: each class is bright in its
    own colour channel (red, green, blue), with noise, in a few different sizes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = (10 + i % 3, 12)
            pixels = rng.integers(0, 60, size=(*size, 3), dtype=np.uint8)
            channel = {"red": 0, "green": 1, "blue": 2}.get(name, k % 3)
            pixels[..., channel] = 200 + rng.integers(0, 50, size=size, dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.fixture(autouse=True)
def _process_state_put_back(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test leaves the worker's environment and Hydra's globals as it found them.

    Tests that train in-process leave what a one-run CLI process never has to undo:
    Lightning's ``deterministic=true`` sets ``CUBLAS_WORKSPACE_CONFIG`` in
    ``os.environ`` (which every later subprocess inherits), ``seed_everything`` sets
    ``PL_GLOBAL_SEED``, and a Hydra job run in-process keeps its ``HydraConfig`` (whose
    choices and output folder the config checks read). Which test leaked what is written
    to ``$DLTRAIN_TEST_LEAKS``, if set.
    """
    environ = _environ()
    yield
    _put_back(environ, request.node.nodeid)


@pytest.fixture(autouse=True, scope="module")
def _module_state_put_back(request: pytest.FixtureRequest) -> Iterator[None]:
    """The same for a module's shared fixtures (a run trained once for the module)."""
    environ = _environ()
    yield
    _put_back(environ, f"{request.node.nodeid} (module fixtures)")


def _put_back(environ: dict[str, str], who: str) -> None:
    from hydra.core.hydra_config import HydraConfig

    leaks = []
    if _environ() != environ:
        changed = sorted(set(_environ().items()) ^ set(environ.items()))
        leaks.append(f"environ {sorted({k for k, _ in changed})}")
        for key in set(_environ()) - set(environ):
            del os.environ[key]
        os.environ.update(environ)
    if HydraConfig.initialized():
        leaks.append("HydraConfig")
        HydraConfig.instance().cfg = None  # type: ignore[assignment]
    report = os.environ.get("DLTRAIN_TEST_LEAKS")
    if leaks and report:
        with open(report, "a") as out:
            out.write(f"{who}: {', '.join(leaks)}\n")


def _environ() -> dict[str, str]:
    """``os.environ`` less the variable pytest itself sets for each test phase."""
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
