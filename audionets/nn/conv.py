"""The Conv1d block shared by the time-domain and time-frequency CNN classifiers, and the
Conv2d block of the spectrogram-image CNN (``cnn2d``); :func:`per_layer` expands an option of
a stack of blocks (the CNNs', the autoencoder's) given once or per layer.

One block is::

    x ──pad──conv(k, stride, groups)──[batch norm]──activation──(+ skip)──[pool]──[dropout]──▶
       └───────────── skip: identity, or 1x1 conv (stride) when shapes differ ───┘

Padding is "same" in the TensorFlow sense: the output has ``ceil(T / stride)`` frames for any
kernel size (odd or even) and any input length, so the residual skip always lines up.
Max pooling uses ``ceil_mode``, so a block never turns a short input into zero frames.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from audionets.errors import ArgumentError
from audionets.nn.activations import get_activation


def per_layer(value: int | Sequence[int], layers: int, key: str) -> list[int]:
    """Broadcast an int to ``layers`` entries, or check that a list has exactly that many
    (ArgumentError naming ``key`` and ``channels``, whose length is the number of layers)."""
    if isinstance(value, (list, tuple)):
        if len(value) != layers:
            raise ArgumentError(
                f"{key} has {len(value)} entries but channels has {layers}; "
                "give one per layer or a single int", key, "channels"
            )
        return [int(v) for v in value]
    return [int(value)] * layers


def same_padding(length: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """Left/right padding so that a strided conv yields ``ceil(length / stride)`` frames."""
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + kernel_size - length, 0)
    return total // 2, total - total // 2


class ConvBlock1d(nn.Module):
    """Conv1d + optional batch norm + activation + optional residual skip, pooling and dropout.

    Shapes: ``[B, in_channels, T] -> [B, out_channels, T']`` with
    ``T' = ceil(ceil(T / stride) / pool)``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: convolution kernel size (any positive int).
        stride: convolution stride.
        groups: convolution groups; must divide both channel counts.
        batch_norm: add BatchNorm1d after the convolution (the conv then has no bias).
        activation: name for :func:`audionets.nn.activations.get_activation`.
        pool: max-pooling size and stride (1 = no pooling).
        residual: add a skip connection around conv/norm/activation; the skip is a 1x1 conv
            with the same stride when channels or stride differ, the identity otherwise.
        dropout: dropout probability applied last.
        layer: index of the block in its stack: errors name the classifier's per-layer
            arguments (``kernel_sizes[layer]``, ``strides[layer]``, ...).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        batch_norm: bool = True,
        activation: str = "relu",
        pool: int = 1,
        residual: bool = False,
        dropout: float = 0.0,
        layer: int = 0,
    ) -> None:
        super().__init__()
        for key, value in (("kernel_sizes", kernel_size), ("strides", stride), ("pool", pool),
                           ("groups", groups)):
            if int(value) < 1:
                raise ArgumentError(f"{key}[{layer}] must be >= 1, got {value}", key)
        if in_channels % groups or out_channels % groups:
            raise ArgumentError(
                f"groups[{layer}]={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}; give groups per layer as a list", "groups"
            )
        if not 0.0 <= dropout < 1.0:
            raise ArgumentError(f"dropout must be in [0, 1), got {dropout}", "dropout")
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.conv = nn.Conv1d(
            in_channels, out_channels, self.kernel_size, stride=self.stride, groups=groups,
            bias=not batch_norm,
        )
        self.norm = nn.BatchNorm1d(out_channels) if batch_norm else nn.Identity()
        self.activation = get_activation(activation, out_channels)
        if residual and (in_channels != out_channels or self.stride != 1):
            self.skip: nn.Module | None = nn.Conv1d(
                in_channels, out_channels, 1, stride=self.stride, bias=False
            )
        elif residual:
            self.skip = nn.Identity()
        else:
            self.skip = None
        self.pool = nn.MaxPool1d(pool, ceil_mode=True) if pool > 1 else nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x[B, C_in, T] -> [B, C_out, ceil(ceil(T / stride) / pool)]``."""
        left, right = same_padding(x.shape[-1], self.kernel_size, self.stride)
        y = self.activation(self.norm(self.conv(F.pad(x, (left, right)))))
        if self.skip is not None:
            y = y + self.skip(x)
        return self.dropout(self.pool(y))


class ConvBlock2d(nn.Module):
    """Conv2d (k x k, "same" padding) + optional batch norm + activation + max pooling + dropout.

    Shapes: ``[B, in_channels, F, T] -> [B, out_channels, ceil(F / pool), ceil(T / pool)]``
    (pooling with ``ceil_mode``, so a small input never pools to zero rows or frames).

    Args:
        in_channels, out_channels: channels of the input and output feature maps.
        kernel_size: odd convolution kernel size (the same over frequency and time).
        batch_norm: add BatchNorm2d after the convolution (the conv then has no bias).
        activation: name for :func:`audionets.nn.activations.get_activation`.
        pool: max-pooling size and stride over both axes (1 = no pooling).
        dropout: dropout probability applied last.
        layer: index of the block in its stack, for error messages (``kernel_sizes[layer]``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 batch_norm: bool = True, activation: str = "relu", pool: int = 2,
                 dropout: float = 0.0, layer: int = 0) -> None:
        super().__init__()
        if int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
            raise ArgumentError(f"kernel_sizes[{layer}] must be an odd int >= 1, got {kernel_size}",
                                "kernel_sizes")
        if int(pool) < 1:
            raise ArgumentError(f"pool[{layer}] must be >= 1, got {pool}", "pool")
        if not 0.0 <= dropout < 1.0:
            raise ArgumentError(f"dropout must be in [0, 1), got {dropout}", "dropout")
        self.conv = nn.Conv2d(in_channels, out_channels, int(kernel_size),
                              padding=int(kernel_size) // 2, bias=not batch_norm)
        self.norm = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.activation = get_activation(activation, out_channels)
        self.pool = nn.MaxPool2d(int(pool), ceil_mode=True) if int(pool) > 1 else nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x[B, C_in, F, T] -> [B, C_out, ceil(F / pool), ceil(T / pool)]``."""
        return self.dropout(self.pool(self.activation(self.norm(self.conv(x)))))
