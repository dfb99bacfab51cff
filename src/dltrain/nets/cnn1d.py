"""A configurable 1D convolutional network for sequences ``(channels, length)``."""

from __future__ import annotations

from torch import Tensor, nn

from dltrain.errors import ConfigError
from dltrain.nets.layers import Activation, Dropout, NonNegative, Pool, Shape, Size
from dltrain.nets.layers import activation as make_activation


class CNN1D(nn.Module):
    """The 1D twin of :class:`dltrain.nets.cnn.CNN`: stages of
    ``[conv -> BN -> act] * convs_per_stage -> max-pool(2)``, then a flatten (position
    matters) or global-average (``pool="avg"``, shift-invariant) head."""

    takes = "sequences"

    def __init__(
        self,
        in_shape: Shape,
        num_classes: int,
        channels: Shape = (32, 64, 128),
        convs_per_stage: Size = 1,
        kernel_size: Size = 5,
        activation: Activation = "relu",
        dropout: Dropout = 0.0,
        pool: Pool = "flatten",
        hidden: NonNegative = 0,
    ) -> None:
        super().__init__()
        if pool not in ("flatten", "avg"):
            raise ConfigError(f"model.pool={pool!r} is not known", "use flatten or avg")
        in_ch, length = int(in_shape[0]), int(in_shape[1])
        layers: list[nn.Module] = []
        for out_ch in channels:
            for _ in range(convs_per_stage):
                layers += [
                    nn.Conv1d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False),
                    nn.BatchNorm1d(out_ch),
                    make_activation(activation),
                ]
                in_ch = out_ch
            if length >= 2:
                layers.append(nn.MaxPool1d(2))
                length //= 2
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.AdaptiveAvgPool1d(1)] if pool == "avg" else []
        head.append(nn.Flatten())
        features = in_ch if pool == "avg" else in_ch * length
        if hidden > 0:
            head += [nn.Linear(features, hidden), make_activation(activation)]
            features = hidden
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(features, num_classes))
        self.head = nn.Sequential(*head)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
