"""A small Transformer encoder classifier for sequences ``(channels, length)``."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from dltrain.nets.encoder import TokenClassifier


class SequenceTransformer(nn.Module):
    """One token per position (its channels projected to ``width``), then the shared
    :class:`TokenClassifier`."""

    takes = "sequences"

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        width: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        channels, length = int(in_shape[0]), int(in_shape[1])
        self.embed = nn.Linear(channels, width)
        self.encoder = TokenClassifier(length, num_classes, width, depth, heads, mlp_ratio, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(self.embed(x.transpose(1, 2)))  # (N, C, L) -> (N, L, width)
