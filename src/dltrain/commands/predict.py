"""``dl-predict``: the top-k classes of image files or texts with a dl-train checkpoint
(table rows of a tabular model: ``predict_rows.py``).

The checkpoint carries all that is needed: the training config (to rebuild the net),
the weights, and what the inputs need (``dltrain_data``: the statistics training
normalised images with; for text the class names, ``max_length`` and the tokenizer's
state), so neither the training data nor Lightning is loaded.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig
from torch import Tensor, nn

from dltrain.checkpointing.checkpoint_io import load_checkpoint
from dltrain.checkpointing.run_record import rebuild_net
from dltrain.commands import predict_rows, predict_text
from dltrain.data.loading.augment import center_crop
from dltrain.data.sources.tabular import checkpoint_state
from dltrain.data.storage.image_decode import decode_image
from dltrain.errors import ConfigError, DataError
from dltrain.records.results import write_json

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Characters of a text shown on screen.
TEXT_SHOWN = 70


def run(cfg: DictConfig) -> list[dict[str, Any]]:
    ckpt_path = Path(str(cfg.ckpt_path))
    checkpoint = load_checkpoint(ckpt_path)
    fitted = checkpoint_state(checkpoint)
    if fitted is not None:  # a tabular model: rows of a table in, predictions.csv out
        if not predict_rows.is_table(str(cfg.inputs)):
            raise ConfigError(
                f"{ckpt_path} is a model of table rows, but inputs={cfg.inputs} is not a table",
                "pass inputs=<rows.csv> (or .parquet) with the feature columns",
            )
        predict_rows.run(cfg, checkpoint, fitted)
        return []
    net, run_cfg = rebuild_net(checkpoint, ckpt_path)
    stats = input_stats(checkpoint, ckpt_path)
    if int(cfg.top_k) < 1:
        raise ConfigError(f"top_k={cfg.top_k} must be at least 1", "use e.g. top_k=3")
    is_text = getattr(net, "takes", None) == "text"
    if is_text:
        inputs, probs = predict_text.run(net, run_cfg, stats, cfg)
    else:
        inputs, probs = predict_images(net, run_cfg, stats, cfg)
    # Names given here, else those of the training data (class folders or files, label
    # names), else indices.
    names = list(cfg.class_names) if cfg.class_names else stats.get("classes") or None
    records = top_k(inputs, probs, int(cfg.top_k), names)
    out = Path(cfg.paths.output_dir)
    write_predictions(out, records, ckpt_path)
    show(records, cut=TEXT_SHOWN if is_text else None)
    print(f"predictions: {out / 'predictions.csv'}, {out / 'predictions.json'}")
    return records


def predict_images(
    net: nn.Module, run_cfg: DictConfig, stats: dict[str, Any], cfg: DictConfig
) -> tuple[list[str], Tensor]:
    """The image files to classify, and their class probabilities. The input shape the
    net takes, and the shape its training data was stored at (larger with
    ``data.cache_shape``: evaluation took the center crop), come from the config."""
    if cfg.get("text") is not None:
        raise ConfigError(
            "text= was given, but this model classifies images",
            "pass image files or folders with inputs=",
        )
    if cfg.inputs is None:
        raise ConfigError("nothing to predict", "pass inputs=<image, folder or [a.png,b/]>")
    shape = [int(s) for s in run_cfg.data.shape]
    stored = [int(s) for s in run_cfg.data.get("cache_shape") or shape]
    files = find_images(cfg.inputs)
    probs = predict(net, files, shape, stats, int(cfg.batch_size), stored)
    return [str(f) for f in files], probs


def input_stats(checkpoint: dict[str, Any], ckpt_path: Path) -> dict[str, Any]:
    stats = checkpoint.get("dltrain_data")
    if not stats:
        raise DataError(
            f"{ckpt_path} does not record the input statistics its training used",
            "retrain with this version of dl-train (checkpoints now store data.mean/std)",
        )
    return stats


def find_images(inputs: Any) -> list[Path]:
    """Files given directly, and images found (recursively, sorted) in folders."""
    items = list(inputs) if isinstance(inputs, (list, tuple, ListConfig)) else [inputs]
    files: list[Path] = []
    for item in items:
        path = Path(str(item))
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(
                    f"no .png/.jpg/.jpeg images in {path}", "point inputs= at image files"
                )
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(
                f"input {path} does not exist", "pass an image file, a folder, or a list [a,b]"
            )
    return files


def load_image(path: Path, shape: Sequence[int]) -> Tensor:
    """Decode to the model's channel count and size: ``uint8`` ``(C, H, W)``, with the
    decoder image folders are cached with (``data/storage/image_decode.py``)."""
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ConfigError(
            f"this model takes inputs of shape {list(shape)}, not images",
            "dl-predict reads images for models trained on 1- or 3-channel image data",
        )
    try:
        return torch.from_numpy(decode_image(str(path), shape).copy())
    except OSError as ex:  # PIL's UnidentifiedImageError is one
        raise DataError(
            f"cannot decode {path} as an image ({ex})", "pass PNG or JPEG files"
        ) from ex


def predict(
    net: nn.Module,
    files: Sequence[Path],
    shape: Sequence[int],
    stats: dict[str, Any],
    batch: int,
    stored: Sequence[int] | None = None,
) -> Tensor:
    """Class probabilities ``(N, classes)``, prepared as evaluation batches were: resized
    to the stored shape, center-cropped to ``shape``, normalised."""
    mean = torch.tensor(stats["mean"]).view(-1, 1, 1)
    std = torch.tensor(stats["std"]).view(-1, 1, 1)
    out = []
    with torch.inference_mode():
        for i in range(0, len(files), batch):
            x = torch.stack([load_image(f, stored or shape) for f in files[i : i + batch]])
            x = center_crop(x, shape[1:]).float()
            # Image files hold 0..255 whatever the training set stored; the statistics
            # are of inputs scaled to [0, 1] (see InMemoryDataModule.normalize).
            x = (x / 255.0 - mean) / std
            out.append(net(x).softmax(-1))
    return torch.cat(out)


def top_k(
    inputs: Sequence[str], probs: Tensor, k: int, names: Sequence[str] | None
) -> list[dict[str, Any]]:
    """One record per input (a file's path, or a text): its top ``k`` classes."""
    values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    records = []
    for item, vals, idxs in zip(inputs, values.tolist(), indices.tolist(), strict=True):
        top = [
            {"class": int(i), "name": names[i] if names and i < len(names) else str(i), "prob": v}
            for v, i in zip(vals, idxs, strict=True)
        ]
        records.append({"input": item, "top": top})
    return records


def write_predictions(out: Path, records: list[dict[str, Any]], ckpt_path: Path) -> None:
    write_json(out / "predictions.json", {"checkpoint": str(ckpt_path), "predictions": records})
    with (out / "predictions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["input", "rank", "class", "name", "probability"])
        for rec in records:
            for rank, t in enumerate(rec["top"], start=1):
                writer.writerow([rec["input"], rank, t["class"], t["name"], f"{t['prob']:.6f}"])


def show(records: list[dict[str, Any]], cut: int | None = None) -> None:
    """One line per input; texts longer than ``cut`` characters are shortened on screen
    (the files keep all of them)."""
    for rec in records:
        shown = "  ".join(f"{t['name']} ({t['prob']:.3f})" for t in rec["top"])
        item = rec["input"]
        if cut is not None and len(item) > cut:
            item = item[: cut - 3] + "..."
        print(f"{item}: {shown}")
