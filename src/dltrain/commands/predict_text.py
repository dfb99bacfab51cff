"""``dl-predict`` for text models: texts from the command line or files, tokenised as in
training, classified in batches.

Texts come from ``text="..."`` (or a list) and from ``inputs=`` files: a ``.txt`` holds
one example per line; a ``.csv``/``.tsv``/``.jsonl`` holds one per row, in
``text_column`` (default: the column training read, else ``text``). The tokenizer is
rebuilt from the training config and the state stored in the checkpoint, so the ids are
those training used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig
from torch import Tensor, nn

from dltrain.data.loading.text_batches import PaddedTextBatches
from dltrain.data.sources.text import encode_texts
from dltrain.data.sources.text_files import read_lines, read_rows
from dltrain.errors import ConfigError, DataError

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")


def run(
    net: nn.Module, run_cfg: DictConfig, stats: dict[str, Any], cfg: DictConfig
) -> tuple[list[str], Tensor]:
    """The texts to classify, and their class probabilities ``(N, classes)``."""
    column = cfg.get("text_column") or run_cfg.data.get("text_column") or "text"
    texts = read_texts(cfg.get("inputs"), str(column)) + given_texts(cfg.get("text"))
    if not texts:
        raise ConfigError(
            "nothing to predict",
            'pass text="..." or inputs=<a .txt file (one text a line), or a .csv/.jsonl '
            "file with text_column=...>",
        )
    tokenizer = instantiate(run_cfg.data.tokenizer)
    tokenizer.load_state(stats.get("tokenizer", ""))
    max_length = int(stats.get("max_length") or run_cfg.data.max_length)
    return texts, predict(net, tokenizer, texts, max_length, int(cfg.batch_size))


def given_texts(text: Any) -> list[str]:
    """``text="a review"`` or ``text=[one,two]`` from the command line."""
    if text is None:
        return []
    items = list(text) if isinstance(text, (list, tuple, ListConfig)) else [text]
    return [str(t) for t in items]


def read_texts(inputs: Any, column: str) -> list[str]:
    """The examples of every file in ``inputs`` (one path or a list), in order."""
    if inputs is None:
        return []
    items = list(inputs) if isinstance(inputs, (list, tuple, ListConfig)) else [inputs]
    texts: list[str] = []
    for item in items:
        path = Path(str(item))
        if not path.is_file():
            raise DataError(
                f"input {path} does not exist or is not a file",
                "pass a .txt file (one text a line), a .csv/.tsv/.jsonl file, or text=...",
            )
        texts += _read_file(path, column)
    return texts


def _read_file(path: Path, column: str) -> list[str]:
    if path.suffix.lower() not in TABLE_SUFFIXES:
        return read_lines(path)  # .txt or any other plain text: one example a line
    rows = read_rows(path, "inputs", "pass a .txt file with one text a line")
    if rows and column not in rows[0]:
        raise DataError(
            f"{path} has no column '{column}' (columns: {', '.join(rows[0])})",
            "name the column that holds the texts with text_column=...",
        )
    return [str(r[column]) for r in rows]


def predict(
    net: nn.Module, tokenizer: Any, texts: list[str], max_length: int, batch_size: int
) -> Tensor:
    """Softmax probabilities in the order of ``texts``: the batches training used
    (dynamic padding), unshuffled and unbucketed, so row i is text i."""
    ids, lengths = encode_texts(tokenizer, texts, max_length)
    labels = torch.zeros(len(texts), dtype=torch.long)  # unused; the batches carry some
    batches = PaddedTextBatches(ids, lengths, labels, batch_size, bucket=False, shuffle=False)
    with torch.inference_mode():
        return torch.cat([net(x).softmax(-1) for x, _ in batches])
