"""A small Transformer encoder classifier for sequences ``(channels, length)``."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Gt
from torch import Tensor, nn

from dltrain.nets.encoder import TokenClassifier
from dltrain.nets.layers import Dropout, Shape, Size


class SequenceTransformer(nn.Module):
    """One token per position (its channels projected to ``width``), then the shared
    :class:`TokenClassifier`."""

    takes = "sequences"

    def __init__(
        self,
        in_shape: Shape,
        num_classes: int,
        width: Size = 64,
        depth: Size = 2,
        heads: Size = 4,
        mlp_ratio: Annotated[float, Gt(0)] = 2.0,
        dropout: Dropout = 0.0,
    ) -> None:
        super().__init__()
        channels, length = int(in_shape[0]), int(in_shape[1])
        self.embed = nn.Linear(channels, width)
        self.encoder = TokenClassifier(length, num_classes, width, depth, heads, mlp_ratio, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(self.embed(x.transpose(1, 2)))  # (N, C, L) -> (N, L, width)
