"""Activation functions by name, so that configs can say ``activation: gelu``.

>>> get_activation("leaky_relu")
LeakyReLU(negative_slope=0.01)

Every activation maps a tensor of any shape to one of the same shape. ``prelu`` has a
learnable slope; give ``num_channels`` to learn one slope per channel (dimension 1 of the
input, e.g. ``C`` of ``[B, C, T]``), otherwise one slope is shared.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from audionets.errors import ArgumentError

_ACTIVATIONS: dict[str, Callable[[int], nn.Module]] = {
    "relu": lambda _: nn.ReLU(),
    "leaky_relu": lambda _: nn.LeakyReLU(0.01),
    "elu": lambda _: nn.ELU(),
    "gelu": lambda _: nn.GELU(),
    "selu": lambda _: nn.SELU(),
    "silu": lambda _: nn.SiLU(),
    "swish": lambda _: nn.SiLU(),
    "mish": lambda _: nn.Mish(),
    "softplus": lambda _: nn.Softplus(),
    "tanh": lambda _: nn.Tanh(),
    "sigmoid": lambda _: nn.Sigmoid(),
    "hardtanh": lambda _: nn.Hardtanh(),
    "prelu": lambda channels: nn.PReLU(num_parameters=channels),
    "identity": lambda _: nn.Identity(),
}


def activation_names() -> list[str]:
    """The names :func:`get_activation` accepts, sorted."""
    return sorted(_ACTIVATIONS)


def get_activation(name: str, num_channels: int = 1, where: str = "activation") -> nn.Module:
    """Build the activation called ``name`` (case-insensitive).

    Args:
        name: one of :func:`activation_names`.
        num_channels: number of learnable slopes for ``prelu`` (1 = shared); ignored otherwise.
        where: the argument ``name`` came from, named in the error message.

    Raises:
        ArgumentError: (a ValueError) naming ``where`` when ``name`` is not a known activation.
    """
    key = str(name).lower()
    if key not in _ACTIVATIONS:
        raise ArgumentError(
            f"unknown {where} {name!r}; choose one of: {', '.join(activation_names())}", where
        )
    return _ACTIVATIONS[key](num_channels)
