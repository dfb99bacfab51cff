"""The versions an export was made with (the card's ``versions``): what to install to
load the file, and what to suspect when a newer runtime disagrees with it."""

from __future__ import annotations

import platform
from importlib import metadata

#: Distributions recorded for every export, and those a format adds.
ALWAYS = ("dl-train", "torch", "numpy")
BY_FORMAT = {
    "onnx": ("onnx", "onnxruntime", "onnxscript"),
    "pt2": (),
    "safetensors": ("safetensors",),
    "xgboost": ("xgboost",),
    "lightgbm": ("lightgbm",),
}
TEXT = ("transformers", "tokenizers")


def versions(fmt: str, text: bool = True) -> dict[str, str]:
    names = [*ALWAYS, *BY_FORMAT.get(fmt, ()), *(TEXT if text else ())]
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
