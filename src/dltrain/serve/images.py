"""Images as the net takes them: decoded with PIL, resized, center-cropped, normalised.

The same steps, in numpy, as ``dl-predict``'s checkpoint path (``commands/predict.py``):
decode to the channel count and the shape training stored the images at (PIL's bilinear
filter, as ``data/storage/image_decode.py``), take the central crop the net takes,
scale to [0, 1] and normalise with the training statistics.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from dltrain.errors import DataError

MODES = {1: "L", 3: "RGB"}
#: Larger images are refused before decoding: a small PNG can unpack to gigabytes.
MAX_PIXELS = 40_000_000


def decode(data: bytes, shape: Sequence[int], name: str = "image") -> np.ndarray:
    """Encoded image bytes (PNG, JPEG, ...) as ``uint8`` ``(C, H, W)`` at ``shape``."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise DataError(
                    f"{name} is {img.width}x{img.height} pixels, over {MAX_PIXELS:,}",
                    "send a smaller image",
                )
            img = img.convert(MODES[int(shape[0])])
            img = img.resize((int(shape[2]), int(shape[1])), Image.Resampling.BILINEAR)
            pixels = np.asarray(img)
    except (OSError, ValueError, Image.DecompressionBombError) as ex:  # and Unidentified...
        raise DataError(
            f"cannot decode {name} as an image ({type(ex).__name__})", "send PNG or JPEG data"
        ) from ex
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def center_crop(x: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """The central ``size`` window of the trailing two axes."""
    h, w = x.shape[-2:]
    top, left = (h - int(size[0])) // 2, (w - int(size[1])) // 2
    return x[..., top : top + int(size[0]), left : left + int(size[1])]


def batch(
    images: Sequence[np.ndarray],
    shape: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    scale: float = 255.0,
) -> np.ndarray:
    """Decoded ``uint8`` images at the stored shape -> the net's float32 ``(N, C, H, W)``."""
    x = center_crop(np.stack(images), shape[1:]).astype(np.float32)
    m = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
    return (x / np.float32(scale) - m) / s
