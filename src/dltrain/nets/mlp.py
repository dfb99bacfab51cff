"""A multi-layer perceptron over flattened inputs, or over table rows (categorical
columns embedded first, see ``tabular_inputs.py``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from dltrain.nets.layers import Activation, Dropout, Shape, Size
from dltrain.nets.layers import activation as make_activation
from dltrain.nets.tabular_inputs import TabularInputs


class MLP(nn.Module):
    """``flatten -> [linear -> (batch norm) -> act -> (dropout)] * len(hidden) -> linear``.

    ``tabular`` (set by tabular data: ``{"numeric": n, "categories": [...]}``) puts
    category embeddings (``embed_dim`` wide, ``None``: by cardinality) in front.
    ``num_classes`` is the output width (1 for regression).
    """

    def __init__(
        self,
        in_shape: Shape,
        num_classes: int,
        hidden: Sequence[Size] = (256, 128),
        activation: Activation = "relu",
        dropout: Dropout = 0.0,
        batch_norm: bool = False,
        tabular: Mapping[str, Any] | None = None,
        embed_dim: int | None = None,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        if tabular is not None:
            inputs = TabularInputs(tabular, embed_dim)
            layers, width = [inputs], inputs.out_features
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
