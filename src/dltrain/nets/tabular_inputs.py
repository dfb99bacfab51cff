"""Inputs of tabular nets: numeric columns as they are, categorical codes embedded.

A tabular data set (``data/sources/tabular.py``) serves one float matrix a batch: the numeric
columns (scaled, plus missing indicators) first, then one integer code per categorical
column (0 unknown, 1 missing, 2.. the training levels). ``features`` describes it:
``{"numeric": n, "categories": [cardinality, ...]}``; the recipe puts it in the model
config (``model.tabular``), so a checkpoint rebuilds the same net.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn


def embedding_dim(cardinality: int) -> int:
    """fastai's rule of thumb, ``1.6 * n**0.56`` capped at 32: small tables get small
    vectors, large vocabularies no more than 32 numbers."""
    return int(min(32, round(1.6 * cardinality**0.56)))


class TabularInputs(nn.Module):
    """``(N, numeric + categorical)`` floats -> ``(N, numeric + sum(embedding dims))``.

    Args:
        features: ``{"numeric": n, "categories": [cardinality, ...]}``.
        embed_dim: one width for every category, or ``None`` for ``embedding_dim(card)``.
    """

    def __init__(self, features: Mapping[str, Any], embed_dim: int | None = None) -> None:
        super().__init__()
        self.n_numeric = int(features["numeric"])
        cards: Sequence[int] = [int(c) for c in features.get("categories") or []]
        self.embeddings = nn.ModuleList(
            nn.Embedding(c, int(embed_dim) if embed_dim else embedding_dim(c)) for c in cards
        )
        self.out_features = self.n_numeric + sum(e.embedding_dim for e in self.embeddings)

    def forward(self, x: Tensor) -> Tensor:
        numeric = x[:, : self.n_numeric]
        if not len(self.embeddings):
            return numeric
        codes = x[:, self.n_numeric :].long()
        parts = [numeric] + [emb(codes[:, i]) for i, emb in enumerate(self.embeddings)]
        return torch.cat(parts, dim=1)
