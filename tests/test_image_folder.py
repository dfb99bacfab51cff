"""Image folders: real PNG files, decoded once, cached by content, trained on."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import make_image_folder
from dltrain.data.sources.image_folder import ImageFolderDataModule
from dltrain.errors import ConfigError, DataError
from test_train import train_in_process


def finished(cache: Path) -> list[Path]:
    """The finished caches (folders with an index) under ``cache``."""
    return sorted(p for p in cache.iterdir() if (p / "index.json").is_file())


def datamodule(root: Path, cache: Path | None, **kwargs) -> ImageFolderDataModule:
    args = {"shape": [3, 16, 16], "num_classes": 3, "val_fraction": 0.0, **kwargs}
    dm = ImageFolderDataModule(root=str(root), cache_dir=str(cache) if cache else None, **args)
    dm.setup("fit")
    return dm


def test_folder_of_pngs_trains_a_classifier(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "images", per_class=12)
    cache = tmp_path / "cache"
    _, results = train_in_process(
        tmp_path,
        [
            "data=image_folder",
            f"data.root={root}",
            "data.num_classes=3",
            "data.shape=[3,16,16]",
            "data.cache_shape=[3,20,20]",
            f"data.cache_dir={cache}",
            "data.batch_size=8",
            "model=cnn",
            "optimizer.lr=0.01",
            "trainer.max_epochs=3",
            "augment=imagenet",
            "logger=none",
            "callbacks=none",
        ],
    )
    assert results["status"] == "completed"
    assert results["metrics"]["test/acc"] == 1.0  # colours separate the classes
    (entry,) = finished(cache)
    assert sorted(p.name for p in entry.iterdir()) == ["index.json", "labels.i64", "records.u8"]
    assert not list(cache.glob("*.partial"))


def test_images_are_resized_and_split_with_a_fixed_test_share(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "images", per_class=10)
    dm = datamodule(root, None, test_fraction=0.2)
    assert dm.classes == ["blue", "green", "red"]
    train = dm.train_set.rows()
    assert train.shape == (24, 3, 16, 16) and train.dtype == torch.uint8
    assert dm.test_set.rows().shape == (6, 3, 16, 16)
    # Splits index one memory-mapped record array: no copies of the images.
    assert dm.train_set.x is dm.test_set.x and dm.train_set.x.shape == (30, 3, 16, 16)
    # class "red" (index 2) is bright in channel 0, "blue" in channel 2
    red = train[dm.train_set.y == 2].float().mean((0, 2, 3))
    assert red[0] > 150 and red[1] < 80
    gray = datamodule(root, None, shape=[1, 20, 12])
    assert gray.train_set.rows().shape[1:] == (1, 20, 12)


def test_train_val_test_folders_are_used_as_given(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "images" / "train", per_class=6)
    make_image_folder(tmp_path / "images" / "val", per_class=2)
    make_image_folder(tmp_path / "images" / "test", per_class=3)
    dm = datamodule(tmp_path / "images", None, val_fraction=0.5)
    assert (len(dm.train_set.y), len(dm.val_set.y), len(dm.test_set.y)) == (18, 6, 9)
    assert sorted(dm.val_set.y.tolist()) == [0, 0, 1, 1, 2, 2]


def test_cache_is_read_instead_of_decoding_and_a_changed_folder_is_read_again(
    tmp_path: Path,
) -> None:
    root = make_image_folder(tmp_path / "images")
    cache = tmp_path / "cache"
    first = datamodule(root, cache)
    (cached,) = finished(cache)
    # Mark the cached records: a second load must come from the cache file.
    records = cached / "records.u8"
    records.write_bytes(b"\x07" * records.stat().st_size)
    again = datamodule(root, cache)
    assert (again.train_set.rows() == 7).all()
    assert again.train_set.rows().shape == first.train_set.rows().shape

    # Changing one file (content, size and time) gives a new key: decoded afresh.
    target = root / "red" / "0.png"
    Image.new("RGB", (30, 30), (0, 0, 255)).save(target)
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = datamodule(root, cache)
    assert len(finished(cache)) == 2
    assert not (changed.train_set.rows() == 7).all()
    # A removed file changes the key too.
    (root / "green" / "1.png").unlink()
    assert len(datamodule(root, cache).train_set.y) + len(changed.test_set.y) == 23


def test_folder_errors_say_what_to_fix(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "images")
    with pytest.raises(ConfigError) as err:
        datamodule(root, None, num_classes=10)
    assert str(err.value) == (
        f"{root} has 3 class folders (blue, green, red) but data.num_classes=10"
        " — set data.num_classes=3"
    )
    shutil.rmtree(root / "green")
    (root / "green").mkdir()
    with pytest.raises(DataError) as err:
        datamodule(root, None)
    extensions = ".jpg, .jpeg, .png, .ppm, .bmp, .pgm, .tif, .tiff, .webp"
    assert str(err.value) == (
        f"{root}: Found no valid file for the classes green. Supported extensions are: "
        f"{extensions} — add images ({extensions}) to every class folder"
    )
    with pytest.raises(DataError) as err:
        datamodule(tmp_path / "nowhere", None)
    assert str(err.value) == (
        f"image folder {tmp_path / 'nowhere'} does not exist — set data.root to a folder of "
        "class folders (root/<class>/<image>)"
    )


def test_unreadable_images_are_reported_with_their_paths(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "images")
    (root / "red" / "broken.png").write_bytes(b"not a png")
    (root / "blue" / "empty.png").write_bytes(b"")
    with pytest.raises(DataError) as err:
        datamodule(root, tmp_path / "cache", workers=2)
    assert str(err.value) == (
        f"cannot read 2 images: {root / 'blue' / 'empty.png'} (UnidentifiedImageError), "
        f"{root / 'red' / 'broken.png'} (UnidentifiedImageError) — remove or replace the files"
    )
    (root / "blue" / "empty.png").unlink()
    with pytest.raises(DataError, match=r"^cannot read image .*broken.png \(Unidentified"):
        datamodule(root, None)
