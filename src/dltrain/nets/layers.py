"""Small building blocks shared by the networks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal, get_args

from annotated_types import Ge, Interval, MinLen
from torch import nn

from dltrain.errors import ConfigError

# Types of the nets' arguments: dltrain.config.signatures checks a config against them
# (with pydantic) before anything is built.
Size = Annotated[int, Ge(1)]
NonNegative = Annotated[int, Ge(0)]
Shape = Annotated[Sequence[Size], MinLen(1)]
Dropout = Annotated[float, Interval(ge=0, lt=1)]
Activation = Literal["relu", "gelu", "tanh", "silu", "leaky_relu"]
Pool = Literal["flatten", "avg"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}


assert tuple(ACTIVATIONS) == get_args(Activation)


def activation(name: str) -> nn.Module:
    """An activation module by name, with a clear error for unknown names."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(
            f"unknown activation '{name}'",
            f"use one of: {', '.join(ACTIVATIONS)}",
        ) from None
