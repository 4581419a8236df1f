"""A convolutional autoencoder for waveforms: ``wav[B, T] -> reconstruction[B, T]``."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from audionets.errors import ArgumentError
from audionets.nn.activations import get_activation
from audionets.nn.conv import per_layer
from audionets.registry import MODELS


class _Down(nn.Module):
    """Strided Conv1d padded by ``kernel - stride``: ``[B, C_in, n * s] -> [B, C_out, n]``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, batch_norm: bool,
                 activation: str) -> None:
        super().__init__()
        self.pad = ((kernel - stride) // 2, kernel - stride - (kernel - stride) // 2)
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, bias=not batch_norm)
        self.norm = nn.BatchNorm1d(c_out) if batch_norm else nn.Identity()
        self.activation = get_activation(activation, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(self.conv(F.pad(x, self.pad))))


class _Up(nn.Module):
    """ConvTranspose1d trimmed by ``kernel - stride``: ``[B, C_in, n] -> [B, C_out, n * s]``.

    The trim mirrors :class:`_Down`'s padding. The last layer has no norm or activation.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, batch_norm: bool,
                 activation: str | None) -> None:
        super().__init__()
        self.trim = ((kernel - stride) // 2, kernel - stride - (kernel - stride) // 2)
        last = activation is None
        self.conv = nn.ConvTranspose1d(c_in, c_out, kernel, stride=stride,
                                       bias=last or not batch_norm)
        self.norm = nn.BatchNorm1d(c_out) if batch_norm and not last else nn.Identity()
        self.activation = (
            nn.Identity() if last else get_activation(activation, c_out)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        y = y[..., self.trim[0]: y.shape[-1] - self.trim[1]]
        return self.activation(self.norm(y))


@MODELS.register("conv_autoencoder")
class ConvAutoencoder(nn.Module):
    """Strided Conv1d encoder, linear 1x1 bottleneck, mirrored ConvTranspose1d decoder.

    Shapes, with ``L = prod(strides)`` (the total stride) and ``N = ceil(T / L)``::

        wav[B, T] --pad to N*L--> [B, 1, N*L] --encoder--> z[B, bottleneck_channels, N]
                  --decoder--> [B, 1, N*L] --trim--> reconstruction[B, T]

    The output has the input's length for every ``T >= 1``. Each encoder layer is
    Conv1d(kernel k, stride s) padded by ``k - s`` (so it maps ``n*s`` samples to ``n``
    frames exactly) + optional BatchNorm + activation; each decoder layer is the transposed
    convolution trimmed by the same amount.

    Args:
        sample_rate: sample rate in Hz of the audio the model is trained on (metadata).
        channels: encoder channels per layer; the decoder mirrors them.
        kernel_sizes: per layer (list) or for all layers (int); each must be >= its stride.
        strides: per layer (list) or for all layers (int).
        bottleneck_channels: channels of the code ``z``; with ``channels``' strides this sets
            the compression ratio ``L / bottleneck_channels``.
        batch_norm: BatchNorm1d after each hidden convolution.
        activation: activation name (see :mod:`audionets.nn.activations`).
        normalize_input: in ``forward``, divide each example by its RMS before encoding and
            multiply the decoder output by it: the code then does not carry the level, and
            ``forward(a * wav) == a * forward(wav)`` for ``a > 0``. ``encode``/``decode``
            work on the waveform as given, so use them on RMS-normalised audio in that case.
    """

    def __init__(
        self,
        sample_rate: int = 8000,
        channels: Sequence[int] = (32, 64, 128),
        kernel_sizes: int | Sequence[int] = (8, 8, 4),
        strides: int | Sequence[int] = (4, 4, 2),
        bottleneck_channels: int = 16,
        batch_norm: bool = False,
        activation: str = "prelu",
        normalize_input: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(channels, (list, tuple)) or not channels:
            raise ArgumentError("channels must be a non-empty list of ints, e.g. [32, 64]",
                                "channels")
        layers = len(channels)
        kernels = per_layer(kernel_sizes, layers, "kernel_sizes")
        strides = per_layer(strides, layers, "strides")
        for i, (k, s) in enumerate(zip(kernels, strides)):
            if s < 1 or k < s:
                raise ArgumentError(f"kernel_sizes[{i}]={k} must be >= strides[{i}]={s} >= 1",
                                    "kernel_sizes", "strides")
        if int(bottleneck_channels) < 1:
            raise ArgumentError(f"bottleneck_channels must be >= 1, got {bottleneck_channels}",
                                "bottleneck_channels")
        self.sample_rate = int(sample_rate)
        self.normalize_input = bool(normalize_input)
        self.total_stride = math.prod(strides)
        widths = [1] + [int(c) for c in channels]
        self.encoder = nn.Sequential(*(
            _Down(widths[i], widths[i + 1], kernels[i], strides[i], batch_norm, activation)
            for i in range(layers)
        ))
        self.to_code = nn.Conv1d(widths[-1], int(bottleneck_channels), 1)
        self.from_code = nn.Sequential(
            nn.Conv1d(int(bottleneck_channels), widths[-1], 1),
            get_activation(activation, widths[-1]),
        )
        self.decoder = nn.Sequential(*(
            _Up(widths[i + 1], widths[i], kernels[i], strides[i], batch_norm,
                activation if i > 0 else None)
            for i in reversed(range(layers))
        ))

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav[B, T] -> z[B, bottleneck_channels, ceil(T / total_stride)]``."""
        if wav.dim() != 2:
            raise ValueError(f"expected wav of shape [B, T], got {tuple(wav.shape)}")
        pad = -wav.shape[-1] % self.total_stride
        return self.to_code(self.encoder(F.pad(wav, (0, pad)).unsqueeze(1)))

    def decode(self, z: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """``z[B, bottleneck_channels, N] -> wav[B, length]`` (``length`` defaults to ``N * L``)."""
        wav = self.decoder(self.from_code(z)).squeeze(1)
        return wav if length is None else wav[..., :length]

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav[B, T] -> reconstruction[B, T]``."""
        if not self.normalize_input:
            return self.decode(self.encode(wav), wav.shape[-1])
        scale = wav.pow(2).mean(dim=-1, keepdim=True).sqrt().clamp_min(1e-8)  # [B, 1]
        return self.decode(self.encode(wav / scale), wav.shape[-1]) * scale
