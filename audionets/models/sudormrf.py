"""SuDoRM-RF (Tzinis, Wang and Smaragdis, 2020): an efficient convolutional masking separator.

The model is encoder -> mask network -> decoder, in the learned-filterbank domain::

    mix [B, T] --Encoder--> w [B, E, L] --UConvMasker--> masks [B, S, E, L]
               --Decoder(masks * w)--> sources [B, S, T]

What makes it cheap is the *U-ConvBlock*: a 1x1 convolution expands the C bottleneck channels
to U, then a chain of depthwise convolutions halves the time resolution ``depth - 1`` times;
the resolutions are summed back coarse-to-fine with nearest-neighbour upsampling, and a 1x1
convolution returns to C channels with a residual connection. Most of the receptive field is
thus gathered at 1/2 ... 1/2^(depth-1) of the frame rate, with depthwise (per-channel) filters,
so that a block costs about two 1x1 convolutions per frame. Written from the paper's
description (section 2): not from its code.

Lengths: the encoder pads the mixture so that every sample is covered by whole frames and the
U-ConvBlocks pad their input to a multiple of ``2 ** (depth - 1)`` frames, so any input length
T >= 1 gives T output samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audionets.errors import ArgumentError
from audionets.nn.norms import global_normalize
from audionets.nn.shapes import at_least, exporting, fit, take
from audionets.registry import MODELS


class GlobalLayerNorm(nn.Module):
    """Normalise ``[B, C, L]`` over channels and time together, then a per-channel affine map."""

    def __init__(self, channels: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if exporting():  # onnxruntime's one-pass float32 sums drift on long inputs
            norm = self.norm
            return global_normalize(x, norm.eps, norm.weight[:, None], norm.bias[:, None])
        return self.norm(x)


def conv_norm_act(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                  groups: int = 1, act: bool = True) -> nn.Sequential:
    """Conv1d (padded so that ``L_out = ceil(L / stride)``) -> global layer norm (-> PReLU)."""
    layers = [nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                        padding=(kernel_size - 1) // 2, groups=groups),
              GlobalLayerNorm(out_channels)]
    if act:
        layers.append(nn.PReLU())
    return nn.Sequential(*layers)


class UConvBlock(nn.Module):
    """``[B, C, L] -> [B, C, L]``: expand to U channels, depthwise U-Net over time, project back.

    ``L`` must be a multiple of ``2 ** (depth - 1)`` (the masker pads to one).
    """

    def __init__(self, channels: int, hidden_channels: int, depth: int, kernel_size: int = 5):
        super().__init__()
        self.expand = conv_norm_act(channels, hidden_channels)
        self.downsample = nn.ModuleList(
            conv_norm_act(hidden_channels, hidden_channels, kernel_size,
                          stride=1 if level == 0 else 2, groups=hidden_channels, act=False)
            for level in range(depth)
        )
        self.fuse = nn.Sequential(GlobalLayerNorm(hidden_channels), nn.PReLU())
        self.project = nn.Conv1d(hidden_channels, channels, 1)
        self.out = nn.Sequential(GlobalLayerNorm(channels), nn.PReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = []
        y = self.expand(x)
        for conv in self.downsample:
            y = conv(y)
            levels.append(y)
        # coarse to fine: each level plus the (nearest-neighbour) upsampled coarser sum
        y = levels.pop()
        while levels:
            finer = levels.pop()
            y = finer + F.interpolate(y, size=finer.shape[-1], mode="nearest")
        return self.out(self.project(self.fuse(y)) + x)


class UConvMasker(nn.Module):
    """Mask network: features ``[B, E, L]`` -> masks ``[B, S, E, L]`` (non-negative).

    Global layer norm and a 1x1 bottleneck to ``channels``, ``num_blocks`` U-ConvBlocks, then
    PReLU and a 1x1 convolution to one ``E``-channel mask per source, through ``mask_act``
    (``"relu"`` as in the paper, or ``"softmax"`` across sources: masks that sum to one).
    """

    def __init__(self, in_channels: int, num_sources: int, channels: int, hidden_channels: int,
                 num_blocks: int, depth: int, mask_act: str) -> None:
        super().__init__()
        self.num_sources = num_sources
        self.multiple = 2 ** (depth - 1)
        self.mask_act = mask_act
        self.bottleneck = nn.Sequential(GlobalLayerNorm(in_channels),
                                        nn.Conv1d(in_channels, channels, 1))
        self.blocks = nn.Sequential(*(UConvBlock(channels, hidden_channels, depth)
                                      for _ in range(num_blocks)))
        self.to_masks = nn.Sequential(nn.PReLU(), nn.Conv1d(channels, num_sources * in_channels, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, channels, length = features.shape
        x = self.bottleneck(features)
        # (no negative operand of // or %: ONNX graphs compute integer division truncating)
        padded = fit(x, length + (self.multiple - length % self.multiple) % self.multiple,
                     max_pad=self.multiple)
        x = take(self.blocks(padded), length)
        masks = self.to_masks(x).view(batch, self.num_sources, channels, length)
        return masks.softmax(dim=1) if self.mask_act == "softmax" else F.relu(masks)


@MODELS.register("sudormrf")
class SuDoRMRF(nn.Module):
    """SuDoRM-RF separator, ``mix [B, T] -> sources [B, S, T]`` for any T >= 1.

    The defaults are the paper's "1.0x" model: a 512-filter encoder with kernel 21 and stride
    10, 128 bottleneck channels, 16 U-ConvBlocks of 512 channels with 4 resolutions each
    (2.66M parameters).

    Args:
        num_sources: separated sources S.
        sample_rate: the rate the model is meant for (metadata; not used in forward).
        encoder_kernel_size / encoder_stride / encoder_channels: the learned filterbank
            (stride defaults to kernel // 2).
        channels: C, the bottleneck channels between U-ConvBlocks.
        hidden_channels: U, the channels inside a U-ConvBlock.
        num_blocks: U-ConvBlocks.
        depth: time resolutions per block (``depth - 1`` halvings).
        mask_act: ``"relu"`` (the paper) or ``"softmax"`` (masks sum to one across sources).

    ``model.config`` is the ``{"name": ..., **kwargs}`` dict that rebuilds the model.
    """

    registry_name = "sudormrf"

    def __init__(
        self,
        num_sources: int = 2,
        sample_rate: int = 8000,
        encoder_kernel_size: int = 21,
        encoder_stride: int | None = None,
        encoder_channels: int = 512,
        channels: int = 128,
        hidden_channels: int = 512,
        num_blocks: int = 16,
        depth: int = 4,
        mask_act: str = "relu",
    ) -> None:
        super().__init__()
        self.config = {"name": self.registry_name} | {
            key: value for key, value in locals().items() if key not in ("self", "__class__")
        }
        for key, value, low in [("num_sources", num_sources, 1),
                                ("encoder_kernel_size", encoder_kernel_size, 2),
                                ("encoder_channels", encoder_channels, 1),
                                ("channels", channels, 1), ("hidden_channels", hidden_channels, 1),
                                ("num_blocks", num_blocks, 1), ("depth", depth, 1)]:
            if not isinstance(value, int) or value < low:
                raise ArgumentError(f"{key} must be an integer >= {low}, got {value!r}", key)
        stride = encoder_stride or encoder_kernel_size // 2
        if not isinstance(stride, int) or not 1 <= stride <= encoder_kernel_size:
            raise ArgumentError(f"encoder_stride must be from 1 to encoder_kernel_size, got "
                                f"{encoder_stride!r}", "encoder_stride", "encoder_kernel_size")
        if mask_act not in ("relu", "softmax"):
            raise ArgumentError(f"mask_act must be relu or softmax, got {mask_act!r}", "mask_act")
        self.num_sources = num_sources
        self.sample_rate = sample_rate
        self.kernel_size, self.stride = encoder_kernel_size, stride
        self.encoder = nn.Conv1d(1, encoder_channels, encoder_kernel_size, stride=stride,
                                 bias=False)
        self.masker = UConvMasker(encoder_channels, num_sources, channels, hidden_channels,
                                  num_blocks, depth, mask_act)
        self.decoder = nn.ConvTranspose1d(encoder_channels, 1, encoder_kernel_size, stride=stride,
                                          bias=False)

    @property
    def hop_length(self) -> int:
        """Samples between encoder frames (the encoder stride)."""
        return self.stride

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """``mix [B, T] -> sources [B, S, T]``."""
        if mix.dim() != 2:
            raise ValueError(f"SuDoRMRF expects a [batch, time] mixture, got shape {mix.shape}")
        batch, length = mix.shape
        # pad so that frames cover every sample: kernel + k * stride >= length + pad; the
        # sizes are computed with audionets.nn.shapes so that an exported graph holds for any
        # input length, and the division never floors a negative number (ONNX truncates):
        # for length < kernel any result <= 1 becomes 1
        frames = at_least((length - self.kernel_size + self.stride - 1) // self.stride + 1, 1)
        padded = self.kernel_size + (frames - 1) * self.stride
        features = F.relu(self.encoder(fit(mix, padded, max_pad=self.kernel_size).unsqueeze(1)))
        masks = self.masker(features)  # [B, S, E, L]
        sources = self.decoder((masks * features.unsqueeze(1)).flatten(0, 1))
        return take(sources.view(batch, self.num_sources, -1), length)
