"""Small building blocks shared by the networks."""

from __future__ import annotations

from torch import nn

from dltrain.errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}


def activation(name: str) -> nn.Module:
    """An activation module by name, with a clear error for unknown names."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(
            f"unknown activation '{name}'",
            f"use one of: {', '.join(ACTIVATIONS)}",
        ) from None
