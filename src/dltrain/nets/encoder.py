"""The Transformer part shared by the ViT and the sequence Transformer: tokens in,
class logits out (class token + learned positions + pre-norm encoder)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dltrain.errors import ConfigError


class TokenClassifier(nn.Module):
    """Prepend a class token to ``(N, num_tokens, width)`` tokens, add learned position
    embeddings, run ``nn.TransformerEncoder`` (pre-norm, GELU) and classify the class
    token's output."""

    def __init__(
        self,
        num_tokens: int,
        num_classes: int,
        width: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        dropout: float,
    ) -> None:
        super().__init__()
        if width % heads:
            raise ConfigError(
                f"model.width={width} is not divisible by model.heads={heads}",
                "choose a width that is a multiple of heads (e.g. width=64 heads=4)",
            )
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(1, num_tokens + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            width,
            heads,
            dim_feedforward=int(width * mlp_ratio),
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        cls = self.cls.expand(tokens.shape[0], -1, -1)  # shape[0]: a dynamic batch in torch.export
        tokens = torch.cat([cls, tokens], dim=1) + self.pos
        return self.head(self.norm(self.encoder(tokens)[:, 0]))
