"""FT-Transformer (Gorishniy et al., 2021, "Revisiting Deep Learning Models for Tabular
Data"): every column becomes a token, a Transformer mixes them, a [CLS] token predicts.

Written from the paper (section 3.3 and its appendix defaults) rather than taken from
the ``rtdl`` package, which pins old torch versions; the pieces are torch's own
(``nn.MultiheadAttention``, ``nn.LayerNorm``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dltrain.errors import ConfigError


class FeatureTokenizer(nn.Module):
    """Numeric column j: ``x_j * W_j + b_j``; categorical column j: ``E_j[code] + b_j``;
    a learned [CLS] token is appended. Output ``(N, columns + 1, d_token)``."""

    def __init__(self, features: Mapping[str, Any], d_token: int) -> None:
        super().__init__()
        self.n_numeric = int(features["numeric"])
        cards = [int(c) for c in features.get("categories") or []]
        n_tokens = self.n_numeric + len(cards)
        bound = 1 / math.sqrt(d_token)  # the paper's uniform initialisation
        self.weight = nn.Parameter(torch.empty(self.n_numeric, d_token).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_tokens, d_token).uniform_(-bound, bound))
        # One table for all columns; each column's codes start at its offset.
        offsets = torch.tensor([0, *cards[:-1]], dtype=torch.long).cumsum(0) if cards else None
        self.register_buffer("offsets", offsets, persistent=False)
        self.embedding = nn.Embedding(sum(cards), d_token) if cards else None
        if self.embedding is not None:
            nn.init.uniform_(self.embedding.weight, -bound, bound)
        self.cls = nn.Parameter(torch.empty(1, 1, d_token).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        tokens = x[:, : self.n_numeric, None] * self.weight
        if self.embedding is not None:
            codes = x[:, self.n_numeric :].long() + self.offsets
            tokens = torch.cat([tokens, self.embedding(codes)], dim=1)
        tokens = tokens + self.bias
        return torch.cat([tokens, self.cls.expand(x.shape[0], -1, -1)], dim=1)


class ReGLU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=-1)
        return a * F.relu(b)


class Block(nn.Module):
    """Pre-norm Transformer block; the first block's attention takes raw tokens (the
    paper drops that LayerNorm, its tokens are fresh embeddings)."""

    def __init__(
        self, d: int, heads: int, ffn: int, attn_drop: float, ffn_drop: float, first: bool
    ) -> None:
        super().__init__()
        self.norm_attn = nn.Identity() if first else nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, dropout=attn_drop, batch_first=True)
        self.norm_ffn = nn.LayerNorm(d)
        self.ffn = nn.Sequential(
            nn.Linear(d, 2 * ffn), ReGLU(), nn.Dropout(ffn_drop), nn.Linear(ffn, d)
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm_attn(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.ffn(self.norm_ffn(x))


class FTTransformer(nn.Module):
    """Feature tokenizer -> ``n_blocks`` Transformer blocks -> [CLS] -> LN, ReLU, linear.

    Args:
        tabular: ``{"numeric": n, "categories": [...]}`` (set by tabular data).
        num_classes: output width (1 for regression).
        d_token, n_blocks, heads: the paper's default is 192, 3, 8.
        ffn_factor: feed-forward width as a multiple of ``d_token`` (paper: 4/3).
        attention_dropout, ffn_dropout: paper: 0.2, 0.1.
        in_shape: accepted for a uniform model interface; the width comes from ``tabular``.
    """

    takes = "tables"

    def __init__(
        self,
        tabular: Mapping[str, Any] | None,
        num_classes: int,
        d_token: int = 192,
        n_blocks: int = 3,
        heads: int = 8,
        ffn_factor: float = 4 / 3,
        attention_dropout: float = 0.2,
        ffn_dropout: float = 0.1,
        in_shape: Any = None,
    ) -> None:
        super().__init__()
        if tabular is None:
            raise ConfigError(
                "model=ft_transformer needs tabular data (its tokens are table columns)",
                "use data=tabular (or data=diamonds / data=credit)",
            )
        self.tokenizer = FeatureTokenizer(tabular, d_token)
        ffn = max(1, int(d_token * ffn_factor))
        self.blocks = nn.Sequential(
            *(
                Block(d_token, heads, ffn, attention_dropout, ffn_dropout, first=i == 0)
                for i in range(n_blocks)
            )
        )
        self.head = nn.Sequential(nn.LayerNorm(d_token), nn.ReLU(), nn.Linear(d_token, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.blocks(self.tokenizer(x))
        return self.head(tokens[:, -1])
