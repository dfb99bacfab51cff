"""Texts as the net takes them: token ids right-padded per batch, and the attention mask.

Ids come from the tokenizer training used (the export's ``tokenizer.json``, loaded with
the ``tokenizers`` library, truncated at ``max_length``); padding is to the longest text
of the batch, as ``PaddedTextBatches`` pads evaluation batches.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from dltrain.errors import DataError

#: texts, max_length -> one list of token ids per text
Encoder = Callable[[list[str], int], list[list[int]]]


def file_encoder(path: Path) -> Encoder:
    """An encoder from a ``tokenizers`` JSON file (special tokens added as in training)."""
    from tokenizers import Tokenizer

    if not path.is_file():
        raise DataError(f"{path} is missing", "export the model again (dl-export ... format=onnx)")
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()

    def encode(texts: list[str], max_length: int) -> list[list[int]]:
        tok.enable_truncation(max_length)
        return [e.ids for e in tok.encode_batch(texts)]

    return encode


def batch(rows: list[list[int]], pad_id: int, min_length: int = 1) -> dict[str, np.ndarray]:
    """``input_ids`` and ``attention_mask``, int64 ``(N, longest)``, at least
    ``min_length`` wide (the extra padding is masked: the outputs do not change)."""
    width = max([len(r) for r in rows] + [min_length, 1])
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}
