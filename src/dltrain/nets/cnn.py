"""A configurable small convolutional network for 1- or 3-channel images."""

from __future__ import annotations

from torch import Tensor, nn

from dltrain.errors import ConfigError
from dltrain.nets.layers import Activation, Dropout, NonNegative, Pool, Shape, Size
from dltrain.nets.layers import activation as make_activation


class CNN(nn.Module):
    """Stages of ``[conv -> BN -> act] * convs_per_stage -> 2x2 max-pool``, then a head:
    flatten (``pool="flatten"``, the classic small-image net) or global average pooling
    (``pool="avg"``, size-independent), an optional hidden layer, and a linear classifier.
    Any channel count; stages stop pooling once the feature map is 1 pixel."""

    takes = "images"

    def __init__(
        self,
        in_shape: Shape,
        num_classes: int,
        channels: Shape = (32, 64),
        convs_per_stage: Size = 1,
        kernel_size: Size = 3,
        activation: Activation = "relu",
        dropout: Dropout = 0.0,
        pool: Pool = "flatten",
        hidden: NonNegative = 128,
    ) -> None:
        super().__init__()
        if pool not in ("flatten", "avg"):
            raise ConfigError(f"model.pool={pool!r} is not known", "use flatten or avg")
        in_ch = int(in_shape[0])
        height, width = int(in_shape[1]), int(in_shape[2])
        layers: list[nn.Module] = []
        for out_ch in channels:
            for _ in range(convs_per_stage):
                layers += [
                    nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False),
                    nn.BatchNorm2d(out_ch),
                    make_activation(activation),
                ]
                in_ch = out_ch
            if min(height, width) >= 2:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1)] if pool == "avg" else []
        head.append(nn.Flatten())
        features = in_ch if pool == "avg" else in_ch * height * width
        if hidden > 0:
            head += [nn.Linear(features, hidden), make_activation(activation)]
            features = hidden
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(features, num_classes))
        self.head = nn.Sequential(*head)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
