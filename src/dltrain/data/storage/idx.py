"""Checking IDX files (MNIST's format) before torchvision reads them.

torchvision's reader fails on a damaged file with messages such as ``AssertionError``
or ``shape '[60000, 28, 28]' is invalid for input of size 1234`` that name neither the
file nor the problem. The format is simple enough to check up front: a 4-byte magic
(two zero bytes, a type code, the number of dimensions), one big-endian ``int32``
per dimension, then the data.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from dltrain.errors import DataError

UBYTE = 0x08
_FIX = "re-download the dataset (data.download=true) or replace the file"


def read_header(path: Path, ndim: int) -> tuple[int, ...]:
    """The dimensions of an unsigned-byte IDX file with ``ndim`` dimensions, checked
    against the file's size."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4 + 4 * ndim)
    if len(head) < 4:
        raise DataError(f"{path} is too short to be an IDX file ({size} bytes)", _FIX)
    zero, kind, dims = struct.unpack(">HBB", head[:4])
    expected = f"{UBYTE:02x}{ndim:02x}"
    if zero != 0 or kind != UBYTE or dims != ndim:
        raise DataError(
            f"{path} has IDX magic 0x{head[:4].hex()}, expected 0x0000{expected} "
            f"(unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''})",
            _FIX,
        )
    if len(head) < 4 + 4 * ndim:
        raise DataError(f"{path} is truncated inside its IDX header", _FIX)
    shape = struct.unpack(f">{ndim}i", head[4:])
    want = 4 + 4 * ndim + math.prod(shape)
    if size != want:
        raise DataError(
            f"{path} holds {size} bytes, but its IDX header {list(shape)} needs {want} "
            f"({'truncated' if size < want else 'extra bytes at the end'})",
            _FIX,
        )
    return shape


def check_pair(images: Path, labels: Path, num_classes: int) -> None:
    """An image file and its label file agree, and every label is a valid class."""
    n_images = read_header(images, 3)[0]
    (n_labels,) = read_header(labels, 1)
    if n_images != n_labels:
        raise DataError(f"{images} holds {n_images} images but {labels} {n_labels} labels", _FIX)
    values = np.fromfile(labels, dtype=np.uint8, offset=8)
    if values.size and int(values.max()) >= num_classes:
        raise DataError(
            f"{labels} has label {int(values.max())}, outside 0..{num_classes - 1} "
            f"for data.num_classes={num_classes}",
            "fix the label file, or set data.num_classes to the real class count",
        )
