"""Multi-layer perceptrons for feature vectors: ``x[B, in_features] -> logits[B, num_classes]``.

Used by the tutorials (XOR, vanishing gradients) and as small heads.
"""

from __future__ import annotations

import torch
from torch import nn

from audionets.errors import ArgumentError
from audionets.nn.activations import get_activation
from audionets.registry import MODELS


def _check(in_features: int, num_classes: int, width: int, depth: int) -> None:
    for key, value, low in (("in_features", in_features, 1), ("num_classes", num_classes, 1),
                            ("width", width, 1), ("depth", depth, 0)):
        if int(value) < low:
            raise ArgumentError(f"{key} must be >= {low}, got {value}", key)


@MODELS.register("mlp")
class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units, each Linear + activation, then a linear head.

    Shapes: ``x[B, in_features] -> logits[B, num_classes]``. ``depth=0`` is a linear model.
    XOR needs ``depth >= 1`` with a non-linear activation.

    Args:
        in_features: input dimension D.
        num_classes: output dimension C.
        width: units per hidden layer.
        depth: number of hidden layers.
        activation: activation name (see :mod:`audionets.nn.activations`).
        dropout: dropout after each hidden activation.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        width: int = 16,
        depth: int = 1,
        activation: str = "tanh",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check(in_features, num_classes, width, depth)
        layers: list[nn.Module] = []
        size = int(in_features)
        for _ in range(int(depth)):
            layers += [nn.Linear(size, width), get_activation(activation)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            size = int(width)
        self.hidden = nn.Sequential(*layers)
        self.head = nn.Linear(size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x[B, in_features] -> logits[B, num_classes]``."""
        return self.head(self.hidden(x))


class ResidualBlock(nn.Module):
    """``x + act(Linear(x))`` when ``residual`` else ``act(Linear(x))``; ``[B, W] -> [B, W]``."""

    def __init__(self, width: int, activation: str, residual: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.activation = get_activation(activation)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.activation(self.linear(x))
        return x + y if self.residual else y


@MODELS.register("residual_mlp")
class ResidualMLP(nn.Module):
    """An input layer, ``depth`` blocks ``x + act(Linear(x))`` of constant ``width``, a head.

    Shapes: ``x[B, in_features] -> [B, width] -> ... -> logits[B, num_classes]``.
    With ``residual=False`` the blocks are plain ``act(Linear(x))``: the same parameters and
    depth without the skips, which shows vanishing gradients for deep sigmoid/tanh stacks.
    ``blocks[i].linear.weight.grad`` is the gradient of layer ``i``.

    Args:
        in_features, num_classes, width, activation: as :class:`MLP`.
        depth: number of (residual) blocks.
        residual: add the identity skip around each block.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        width: int = 32,
        depth: int = 4,
        activation: str = "relu",
        residual: bool = True,
    ) -> None:
        super().__init__()
        _check(in_features, num_classes, width, depth)
        self.inp = nn.Linear(in_features, width)
        self.blocks = nn.Sequential(
            *(ResidualBlock(width, activation, residual) for _ in range(int(depth)))
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x[B, in_features] -> logits[B, num_classes]``."""
        return self.head(self.blocks(self.inp(x)))
