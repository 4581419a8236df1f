"""SepFormer (Subakan et al., 2021) and DPRNN (Luo et al., 2020): dual-path masking separators.

The model is encoder -> mask network -> decoder, in the learned-filterbank domain::

    mix [B, T] --Encoder--> w [B, C, L] --DualPathMasker--> masks [B, S, C, L]
               --Decoder(masks * w)--> sources [B, S, T]

The mask network normalises ``w``, projects it to ``d_model`` channels, cuts the L frames into
50%-overlapping chunks of ``chunk_size`` frames and applies ``num_blocks`` dual-path blocks:
an *intra* model along the frames of each chunk and an *inter* model along the chunks at each
position. The intra/inter models are transformer stacks (SepFormer) or bidirectional LSTMs
(DPRNN). A per-source projection, overlap-add, a gated output (tanh * sigmoid) and a ReLU give
one non-negative mask per source.

Inside the masker everything is channels-last (``[B, S_chunks, K, N]``), so the only layout
copy per block is the transpose between the intra and inter views. The computation (padding,
norm statistics, output length) follows SpeechBrain's ``Dual_Path_Model`` and
``SepformerSeparation.separate_batch`` so that :mod:`audionets.interop.speechbrain` can load
its checkpoints and reproduce its outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from audionets.errors import ConfigError
from audionets.nn import onnx_ops
from audionets.nn.attention import TransformerEncoder, add_residual
from audionets.nn.chunking import overlap_add, segment
from audionets.nn.shapes import at_least, exporting, fit
from audionets.registry import MODELS

NORMS = ("ln", "gln", "cln")
BLOCK_TYPES = ("transformer", "lstm")


class Encoder(nn.Module):
    """Learned analysis filterbank: ``wav [B, T] -> ReLU(Conv1d) [B, C, L]``.

    ``L = (T - kernel_size) // stride + 1`` (no padding; needs ``T >= kernel_size``).
    """

    def __init__(self, kernel_size: int = 16, channels: int = 256, stride: int | None = None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride or kernel_size // 2
        self.conv = nn.Conv1d(1, channels, kernel_size, stride=self.stride, bias=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(wav.unsqueeze(1)))


class Decoder(nn.Module):
    """Learned synthesis filterbank: ``[B, C, L] -> ConvTranspose1d -> [B, (L - 1) * stride + kernel]``."""

    def __init__(self, kernel_size: int = 16, channels: int = 256, stride: int | None = None):
        super().__init__()
        self.deconv = nn.ConvTranspose1d(
            channels, 1, kernel_size, stride=stride or kernel_size // 2, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv(x).squeeze(1)


class GlobalNorm(nn.Module):
    """Normalise over every non-batch dimension, then a per-channel affine map.

    Channels-last ``[B, ..., N] -> [B, ..., N]``. This is ``nn.GroupNorm(1, N)`` (SpeechBrain's
    ``"ln"``) and SpeechBrain's ``GlobalLayerNorm`` (``"gln"``) for channels-last tensors.
    """

    def __init__(self, channels: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if exporting():
            # onnxruntime sums a reduction in one float32 pass: over the 10^6 values of 4 s of
            # encoder frames its mean is off by 1e-4 of the output's peak (PyTorch sums
            # pairwise). The exported graph reduces one axis at a time: short sums, exact digits
            centred = x - _mean_over_non_batch_axes(x)
            variance = _mean_over_non_batch_axes(centred * centred)
            return centred * torch.rsqrt(variance + self.eps) * self.weight + self.bias
        return F.layer_norm(x, x.shape[1:], eps=self.eps) * self.weight + self.bias


def _mean_over_non_batch_axes(x: torch.Tensor) -> torch.Tensor:
    """``x.mean(all axes but the first, keepdim=True)``, one axis at a time (last first)."""
    for dim in range(x.dim() - 1, 0, -1):
        x = x.mean(dim, keepdim=True)
    return x


def build_norm(norm: str, channels: int) -> nn.Module:
    """``"ln"``/``"gln"``: :class:`GlobalNorm`; ``"cln"``: LayerNorm over channels at each frame."""
    if norm in ("ln", "gln"):
        return GlobalNorm(channels)
    if norm == "cln":
        return nn.LayerNorm(channels, eps=1e-8)
    raise ConfigError(f"model.norm must be one of {', '.join(NORMS)}, got {norm!r}")


class LSTMBlock(nn.Module):
    """Bidirectional LSTM, ``[B, L, N] -> [B, L, 2 * hidden_size]``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.lstm = nn.LSTM(
            input_size, hidden_size, num_layers, batch_first=True, bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if onnx_ops.exporting_onnx():  # any number of chunks (see audionets.nn.onnx_ops)
                return onnx_ops.recurrent(self.lstm, x)
        return self.lstm(x)[0]


class DualPathBlock(nn.Module):
    """One intra-chunk then one inter-chunk pass, ``[B, S, K, N] -> [B, S, K, N]``.

    ``intra = norm(linear(intra_model(x))) (+ x)``, ``out = norm(linear(inter_model(intra))) + intra``
    where the intra model runs along K (within a chunk) and the inter model along S (across
    chunks); the linear layers are optional (``linear_after_intra_inter``).
    """

    def __init__(
        self,
        intra: nn.Module,
        inter: nn.Module,
        d_model: int,
        model_out: int,
        norm: str,
        skip_around_intra: bool,
        linear_after_intra_inter: bool,
    ) -> None:
        super().__init__()
        self.skip_around_intra = skip_around_intra
        self.intra = intra
        self.inter = inter
        if linear_after_intra_inter:
            self.intra_linear = nn.Linear(model_out, d_model)
            self.inter_linear = nn.Linear(model_out, d_model)
        else:
            self.intra_linear = self.inter_linear = None
        self.intra_norm = build_norm(norm, d_model)
        self.inter_norm = build_norm(norm, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, num_chunks, chunk_size, channels = x.shape
        intra = self.intra(x.reshape(batch * num_chunks, chunk_size, channels))
        if self.intra_linear is not None:
            intra = self.intra_linear(intra)
        intra = self.intra_norm(intra.view(batch, num_chunks, chunk_size, channels))
        if self.skip_around_intra:
            intra = add_residual(intra, x)
        # the one layout copy of the block: [B, S, K, N] -> [B * K, S, N], contiguous
        inter = intra.transpose(1, 2).contiguous().view(batch * chunk_size, num_chunks, channels)
        inter = self.inter(inter)
        if self.inter_linear is not None:
            inter = self.inter_linear(inter)
        inter = self.inter_norm(inter.view(batch, chunk_size, num_chunks, channels))
        return intra + inter.transpose(1, 2)  # contiguous [B, S, K, N], like intra


class DualPathMasker(nn.Module):
    """Mask network: encoder features ``[B, C, L]`` -> masks ``[B, S, C, L]`` (non-negative).

    See the module docstring; arguments are those of :class:`SepFormer`. With
    ``checkpointing`` each dual-path block recomputes its activations in the backward pass
    (less memory, ~30% more compute while training; no effect in eval).
    """

    def __init__(
        self,
        in_channels: int,
        num_sources: int,
        d_model: int,
        chunk_size: int,
        num_blocks: int,
        block_type: str,
        intra_layers: int,
        inter_layers: int,
        nhead: int,
        d_ffn: int,
        dropout: float,
        activation: str,
        norm_before: bool,
        positional_encoding: bool,
        lstm_hidden_size: int,
        lstm_layers: int,
        norm: str,
        skip_around_intra: bool,
        linear_after_intra_inter: bool,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if block_type not in BLOCK_TYPES:
            raise ConfigError(
                f"model.block_type must be one of {', '.join(BLOCK_TYPES)}, got {block_type!r}"
            )
        if chunk_size < 2:
            raise ConfigError(f"model.chunk_size must be at least 2, got {chunk_size}")
        if block_type == "transformer":
            if d_model % nhead:
                raise ConfigError(f"model.d_model ({d_model}) must be divisible by model.nhead ({nhead})")
            if positional_encoding and d_model % 2:
                raise ConfigError(f"model.d_model must be even with positional_encoding, got {d_model}")
            if activation not in ("relu", "gelu"):  # those of SpeechBrain's transformer block
                raise ConfigError(f"model.activation must be relu or gelu, got {activation!r}")
        model_out = d_model if block_type == "transformer" else 2 * lstm_hidden_size
        if model_out != d_model and not linear_after_intra_inter:
            raise ConfigError(
                f"model.lstm_hidden_size: 2 x {lstm_hidden_size} must equal d_model ({d_model}) "
                "unless linear_after_intra_inter is true"
            )

        def path_model(num_layers: int) -> nn.Module:
            if block_type == "transformer":
                return TransformerEncoder(
                    num_layers, d_model, nhead, d_ffn, dropout, activation, norm_before,
                    positional_encoding,
                )
            return LSTMBlock(d_model, lstm_hidden_size, lstm_layers, dropout)

        self.num_sources = num_sources
        self.d_model = d_model
        self.chunk_size = chunk_size
        self.checkpointing = checkpointing
        self.norm = build_norm(norm, in_channels)
        self.in_proj = nn.Linear(in_channels, d_model, bias=False)
        self.blocks = nn.ModuleList(
            DualPathBlock(
                path_model(intra_layers), path_model(inter_layers), d_model, model_out, norm,
                skip_around_intra, linear_after_intra_inter,
            )
            for _ in range(num_blocks)
        )
        self.prelu = nn.PReLU()
        self.out_proj = nn.Linear(d_model, d_model * num_sources)
        self.output = nn.Linear(d_model, d_model)
        self.output_gate = nn.Linear(d_model, d_model)
        self.end_proj = nn.Linear(d_model, in_channels, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, _, length = features.shape
        x = self.in_proj(self.norm(features.transpose(1, 2)))  # [B, L, N]
        x, gap = segment(x, self.chunk_size)  # [B, S_chunks, K, N]
        for block in self.blocks:
            if not torch.jit.is_scripting() and (
                self.checkpointing and self.training and torch.is_grad_enabled()
            ):
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        x = self.out_proj(self.prelu(x))  # [B, S_chunks, K, N * S]
        x = overlap_add(x, gap)  # [B, L, N * S]
        x = x.view(batch, length, self.num_sources, self.d_model)
        x = torch.tanh(self.output(x)) * torch.sigmoid(self.output_gate(x))
        masks = F.relu(self.end_proj(x))  # [B, L, S, C]
        return masks.permute(0, 2, 3, 1)


@MODELS.register("sepformer")
class SepFormer(nn.Module):
    """Dual-path masking separator, ``mix [B, T] -> sources [B, S, T]`` for any T >= 1.

    The defaults are the published WSJ0-2mix SepFormer (25.7M parameters): 256 encoder
    channels, kernel 16 / stride 8, chunks of 250 frames, 2 blocks of 8 intra + 8 inter
    pre-norm transformer layers (8 heads, feed-forward 1024) with positional encoding and a
    skip connection around the intra model.

    Args:
        num_sources: number of separated sources S.
        sample_rate: sampling rate the model is meant for (metadata; not used in forward).
        encoder_kernel_size / encoder_stride / encoder_channels: the learned filterbank
            (stride defaults to kernel // 2).
        decoder_kernel_size / decoder_stride: default to the encoder's.
        d_model: channels N inside the masker.
        chunk_size: frames K per chunk (chunks overlap by K // 2).
        num_blocks: dual-path blocks.
        block_type: ``"transformer"`` (SepFormer) or ``"lstm"`` (DPRNN).
        intra_layers / inter_layers: transformer layers per intra / inter model.
        nhead / d_ffn / dropout / activation (``"relu"``, ``"gelu"``) / norm_before
            (pre-norm) / positional_encoding: transformer settings.
        lstm_hidden_size / lstm_layers: bidirectional LSTM settings (``block_type="lstm"``).
        norm: ``"ln"`` (global; SpeechBrain's default), ``"gln"`` (same computation) or
            ``"cln"`` (per frame) for the masker input and the dual-path outputs.
        skip_around_intra: residual connection around the intra model.
        linear_after_intra_inter: a linear layer after each intra / inter model.
        checkpointing: activation checkpointing per dual-path block while training.

    Output length equals input length: as SpeechBrain's separator, the decoder output is
    zero-padded or trimmed to T (inputs shorter than the encoder kernel are zero-padded first).

    ``model.config`` is the ``{"name": ..., **kwargs}`` dict that rebuilds the model.
    """

    registry_name = "sepformer"

    def __init__(
        self,
        num_sources: int = 2,
        sample_rate: int = 8000,
        encoder_kernel_size: int = 16,
        encoder_stride: int | None = None,
        encoder_channels: int = 256,
        decoder_kernel_size: int | None = None,
        decoder_stride: int | None = None,
        d_model: int = 256,
        chunk_size: int = 250,
        num_blocks: int = 2,
        block_type: str = "transformer",
        intra_layers: int = 8,
        inter_layers: int = 8,
        nhead: int = 8,
        d_ffn: int = 1024,
        dropout: float = 0.0,
        activation: str = "relu",
        norm_before: bool = True,
        positional_encoding: bool = True,
        lstm_hidden_size: int = 128,
        lstm_layers: int = 1,
        norm: str = "ln",
        skip_around_intra: bool = True,
        linear_after_intra_inter: bool = False,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.config = {"name": self.registry_name} | {
            key: value for key, value in locals().items() if key not in ("self", "__class__")
        }
        if num_sources < 1:
            raise ConfigError(f"model.num_sources must be at least 1, got {num_sources}")
        self.num_sources = num_sources
        self.sample_rate = sample_rate
        self.encoder = Encoder(encoder_kernel_size, encoder_channels, encoder_stride)
        self.masker = DualPathMasker(
            encoder_channels, num_sources, d_model, chunk_size, num_blocks, block_type,
            intra_layers, inter_layers, nhead, d_ffn, dropout, activation, norm_before,
            positional_encoding, lstm_hidden_size, lstm_layers, norm, skip_around_intra,
            linear_after_intra_inter, checkpointing,
        )
        self.decoder = Decoder(
            decoder_kernel_size or encoder_kernel_size,
            encoder_channels,
            decoder_stride or self.encoder.stride,
        )

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """``mix [B, T] -> sources [B, S, T]``."""
        if mix.dim() != 2:
            raise ValueError(f"SepFormer expects a [batch, time] mixture, got shape {mix.shape}")
        batch, length = mix.shape
        kernel = self.encoder.kernel_size
        # inputs shorter than the kernel are zero-padded to one frame; the sizes are computed
        # with audionets.nn.shapes so that an exported graph holds for any input length
        features = self.encoder(fit(mix, at_least(length, kernel), max_pad=kernel))  # [B, C, L]
        masks = self.masker(features)  # [B, S, C, L]
        sources = self.decoder((masks * features.unsqueeze(1)).flatten(0, 1))
        sources = sources.view(batch, self.num_sources, -1)
        # the decoder gives (L - 1) * stride + kernel samples: zero-padded or trimmed to T
        return fit(sources, length, max_pad=length)


@MODELS.register("dprnn")
class DPRNN(SepFormer):
    """Dual-path RNN (Luo et al., 2020): :class:`SepFormer` with bidirectional-LSTM blocks.

    Same arguments as :class:`SepFormer`; only the defaults differ: 64 channels, chunks of
    100 frames, 6 blocks of one BLSTM (128 hidden units per direction) followed by a linear
    layer, as in the DPRNN paper with a 16-sample window.
    """

    registry_name = "dprnn"

    def __init__(
        self,
        num_sources: int = 2,
        sample_rate: int = 8000,
        encoder_kernel_size: int = 16,
        encoder_stride: int | None = None,
        encoder_channels: int = 64,
        decoder_kernel_size: int | None = None,
        decoder_stride: int | None = None,
        d_model: int = 64,
        chunk_size: int = 100,
        num_blocks: int = 6,
        block_type: str = "lstm",
        intra_layers: int = 1,
        inter_layers: int = 1,
        nhead: int = 8,
        d_ffn: int = 256,
        dropout: float = 0.0,
        activation: str = "relu",
        norm_before: bool = True,
        positional_encoding: bool = False,
        lstm_hidden_size: int = 128,
        lstm_layers: int = 1,
        norm: str = "ln",
        skip_around_intra: bool = True,
        linear_after_intra_inter: bool = True,
        checkpointing: bool = False,
    ) -> None:
        super().__init__(
            num_sources, sample_rate, encoder_kernel_size, encoder_stride, encoder_channels,
            decoder_kernel_size, decoder_stride, d_model, chunk_size, num_blocks, block_type,
            intra_layers, inter_layers, nhead, d_ffn, dropout, activation, norm_before,
            positional_encoding, lstm_hidden_size, lstm_layers, norm, skip_around_intra,
            linear_after_intra_inter, checkpointing,
        )
