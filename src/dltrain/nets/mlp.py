"""A multi-layer perceptron over flattened inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from dltrain.nets.layers import Activation, Dropout, Shape, Size
from dltrain.nets.layers import activation as make_activation


class MLP(nn.Module):
    """``flatten -> [linear -> (batch norm) -> act -> (dropout)] * len(hidden) -> linear``."""

    def __init__(
        self,
        in_shape: Shape,
        num_classes: int,
        hidden: Sequence[Size] = (256, 128),
        activation: Activation = "relu",
        dropout: Dropout = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
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
