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

Every setting is a field of :class:`DualPathConfig` (the intra/inter model's own settings in a
:class:`TransformerPathModel` or an :class:`LSTMPathModel`); :data:`SEPFORMER_WSJ0_2MIX` and
:data:`DPRNN_PAPER` are the published models, as nanoGPT's ``GPTConfig`` and torchaudio's
``conv_tasnet_base``::

    model = SepFormer(dataclasses.replace(SEPFORMER_WSJ0_2MIX, num_sources=3))
    model = SepFormer(num_sources=3)          # the same: the flat keywords of a YAML config

Inside the masker everything is channels-last (``[B, S_chunks, K, N]``), so the only layout
copy per block is the transpose between the intra and inter views. The computation (padding,
norm statistics, output length) follows SpeechBrain's ``Dual_Path_Model`` and
``SepformerSeparation.separate_batch`` so that :mod:`audionets.interop.speechbrain` can load
its checkpoints and reproduce its outputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from audionets.errors import ArgumentError
from audionets.nn import onnx_ops
from audionets.nn.attention import TransformerEncoder, add_residual
from audionets.nn.chunking import overlap_add, segment
from audionets.nn.norms import global_normalize
from audionets.nn.shapes import at_least, exporting, fit
from audionets.registry import MODELS

NORMS = ("ln", "gln", "cln")


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
        if exporting():  # onnxruntime's one-pass float32 sums drift on long inputs
            return global_normalize(x, self.eps, self.weight, self.bias)
        return F.layer_norm(x, x.shape[1:], eps=self.eps) * self.weight + self.bias


def build_norm(norm: str, channels: int) -> nn.Module:
    """``"ln"``/``"gln"``: :class:`GlobalNorm`; ``"cln"``: LayerNorm over channels at each frame."""
    if norm in ("ln", "gln"):
        return GlobalNorm(channels)
    if norm == "cln":
        return nn.LayerNorm(channels, eps=1e-8)
    raise ArgumentError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}", "norm")


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


@dataclass(frozen=True)
class TransformerPathModel:
    """Intra and inter models of SepFormer: transformer stacks, ``[B', L', N] -> [B', L', N]``.

    Args:
        intra_layers / inter_layers: transformer layers of the intra / inter model.
        nhead / d_ffn / dropout: attention heads, feed-forward width, dropout.
        activation: ``"relu"`` or ``"gelu"`` (those of SpeechBrain's transformer block).
        norm_before: pre-norm layers. positional_encoding: sinusoidal positions added first.
    """

    intra_layers: int = 8
    inter_layers: int = 8
    nhead: int = 8
    d_ffn: int = 1024
    dropout: float = 0.0
    activation: str = "relu"
    norm_before: bool = True
    positional_encoding: bool = True

    block_type: ClassVar[str] = "transformer"

    def __post_init__(self) -> None:
        if self.activation not in ("relu", "gelu"):
            raise ArgumentError(f"activation must be relu or gelu, got {self.activation!r}",
                                "activation")

    def out_channels(self, d_model: int) -> int:
        """Channels of the intra / inter model's output."""
        return d_model

    def build(self, d_model: int, intra: bool) -> nn.Module:
        """The intra (``intra=True``) or inter model for ``d_model`` channels."""
        return TransformerEncoder(
            num_layers=self.intra_layers if intra else self.inter_layers, d_model=d_model,
            nhead=self.nhead, d_ffn=self.d_ffn, dropout=self.dropout, activation=self.activation,
            norm_before=self.norm_before, positional_encoding=self.positional_encoding,
        )


@dataclass(frozen=True)
class LSTMPathModel:
    """Intra and inter models of DPRNN: bidirectional LSTMs, ``[B', L', N] -> [B', L', 2H]``.

    Args:
        hidden_size: H, units per direction. num_layers: stacked LSTM layers (intra and inter
            alike). dropout: between stacked layers.
    """

    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.0

    block_type: ClassVar[str] = "lstm"

    def out_channels(self, d_model: int) -> int:
        """Channels of the intra / inter model's output (both directions)."""
        return 2 * self.hidden_size

    def build(self, d_model: int, intra: bool) -> nn.Module:
        """The intra or inter model (the same architecture) for ``d_model`` input channels."""
        return LSTMBlock(d_model, self.hidden_size, self.num_layers, self.dropout)


PathModel = Union[TransformerPathModel, LSTMPathModel]
PATH_MODELS = {cls.block_type: cls for cls in (TransformerPathModel, LSTMPathModel)}

#: the flat keywords of a YAML ``model`` section (and of :attr:`SepFormer.config`) that set a
#: field of a path model, per block type: ``lstm_hidden_size`` is ``LSTMPathModel.hidden_size``
_PATH_KEYWORDS = {
    "transformer": {field.name: field.name for field in dataclasses.fields(TransformerPathModel)},
    "lstm": {"lstm_hidden_size": "hidden_size", "lstm_layers": "num_layers", "dropout": "dropout"},
}


@dataclass(frozen=True)
class DualPathConfig:
    """Every setting of a dual-path separator; the defaults are :data:`SEPFORMER_WSJ0_2MIX`.

    Args:
        num_sources: number of separated sources S.
        sample_rate: sampling rate the model is meant for (metadata; not used in forward).
        encoder_kernel_size / encoder_stride / encoder_channels: the learned filterbank
            (stride defaults to kernel // 2).
        decoder_kernel_size / decoder_stride: default to the encoder's.
        d_model: channels N inside the masker.
        chunk_size: frames K per chunk (chunks overlap by K // 2).
        num_blocks: dual-path blocks.
        path_model: the intra / inter models: :class:`TransformerPathModel` (SepFormer) or
            :class:`LSTMPathModel` (DPRNN).
        norm: ``"ln"`` (global; SpeechBrain's default), ``"gln"`` (same computation) or
            ``"cln"`` (per frame) for the masker input and the dual-path outputs.
        skip_around_intra: residual connection around the intra model.
        linear_after_intra_inter: a linear layer after each intra / inter model.
        checkpointing: activation checkpointing per dual-path block while training.

    Raises :class:`~audionets.errors.ArgumentError` (a ValueError) naming the field.
    """

    num_sources: int = 2
    sample_rate: int = 8000
    encoder_kernel_size: int = 16
    encoder_stride: int | None = None
    encoder_channels: int = 256
    decoder_kernel_size: int | None = None
    decoder_stride: int | None = None
    d_model: int = 256
    chunk_size: int = 250
    num_blocks: int = 2
    path_model: PathModel = TransformerPathModel()
    norm: str = "ln"
    skip_around_intra: bool = True
    linear_after_intra_inter: bool = False
    checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.num_sources < 1:
            raise ArgumentError(f"num_sources must be at least 1, got {self.num_sources}",
                                "num_sources")
        if self.chunk_size < 2:
            raise ArgumentError(f"chunk_size must be at least 2, got {self.chunk_size}",
                                "chunk_size")
        if self.norm not in NORMS:
            raise ArgumentError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}",
                                "norm")
        if not isinstance(self.path_model, (TransformerPathModel, LSTMPathModel)):
            raise ArgumentError("path_model must be a TransformerPathModel or an LSTMPathModel, "
                                f"got {self.path_model!r}", "path_model")
        path = self.path_model
        if isinstance(path, TransformerPathModel):
            if self.d_model % path.nhead:
                raise ArgumentError(
                    f"d_model ({self.d_model}) must be divisible by path_model.nhead "
                    f"({path.nhead})", "d_model", "path_model.nhead")
            if path.positional_encoding and self.d_model % 2:
                raise ArgumentError(
                    f"d_model must be even with path_model.positional_encoding, got "
                    f"{self.d_model}", "d_model", "path_model.positional_encoding")
        elif path.out_channels(self.d_model) != self.d_model and not self.linear_after_intra_inter:
            raise ArgumentError(
                f"path_model.hidden_size: 2 x {path.hidden_size} must equal d_model "
                f"({self.d_model}) unless linear_after_intra_inter is true",
                "path_model.hidden_size", "d_model", "linear_after_intra_inter",
            )

    # ------------------------------------------------ the flat form: YAML and saved configs

    @classmethod
    def keywords(cls) -> tuple[str, ...]:
        """The flat keywords :meth:`with_keywords` accepts (a YAML ``model`` section's keys)."""
        fields = [field.name for field in dataclasses.fields(cls) if field.name != "path_model"]
        paths = [key for keys in _PATH_KEYWORDS.values() for key in keys if key != "dropout"]
        return (*fields, "block_type", *paths, "dropout")

    def with_keywords(self, **settings: Any) -> DualPathConfig:
        """This config with the flat ``settings`` of a YAML ``model`` section replaced.

        ``block_type`` (``"transformer"`` or ``"lstm"``) picks the path model; the keys of the
        other block type (``nhead`` for an LSTM) are accepted and have no effect, as configs
        saved by audionets 0.1 list them all. Errors name the flat keywords.
        """
        unknown = [key for key in settings if key not in self.keywords()]
        if unknown:
            raise TypeError(f"unexpected keyword argument {unknown[0]!r}; a dual-path separator "
                            f"accepts: {', '.join(self.keywords())}")
        settings = dict(settings)
        block_type = settings.pop("block_type", self.path_model.block_type)
        if block_type not in PATH_MODELS:
            raise ArgumentError(f"block_type must be one of {', '.join(PATH_MODELS)}, got "
                                f"{block_type!r}", "block_type")
        keywords = _PATH_KEYWORDS[block_type]  # flat keyword -> field of the path model
        path_settings = {field: settings.pop(key) for key, field in keywords.items()
                         if key in settings}
        for other in PATH_MODELS:  # keys of the other block type
            for key in _PATH_KEYWORDS[other]:
                settings.pop(key, None)
        same_type = isinstance(self.path_model, PATH_MODELS[block_type])
        base = self.path_model if same_type else PATH_MODELS[block_type]()
        # errors name path_model.nhead (DualPathConfig) or hidden_size (LSTMPathModel)
        flat_names = {f"path_model.{field}": key for key, field in keywords.items()}
        flat_names |= {field: key for key, field in keywords.items()}
        try:
            return dataclasses.replace(
                self, path_model=dataclasses.replace(base, **path_settings), **settings)
        except ArgumentError as err:
            raise err.renamed(flat_names) from None

    def keyword_settings(self) -> dict[str, Any]:
        """The flat form: :meth:`with_keywords` of the defaults with these settings rebuilds
        this config (``block_type`` and the keys of the path model's type only)."""
        flat = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                if field.name != "path_model"}
        flat["block_type"] = self.path_model.block_type
        for key, field in _PATH_KEYWORDS[self.path_model.block_type].items():
            flat[key] = getattr(self.path_model, field)
        return flat


#: SepFormer as published for WSJ0-2mix (Subakan et al., 2021; 25.7M parameters): 256 encoder
#: channels, kernel 16 / stride 8, chunks of 250 frames, 2 blocks of 8 intra + 8 inter pre-norm
#: transformer layers (8 heads, feed-forward 1024) with positional encoding and a skip
#: connection around the intra model
SEPFORMER_WSJ0_2MIX = DualPathConfig()

#: DPRNN as in its paper (Luo et al., 2020) with a 16-sample window: 64 channels, chunks of 100
#: frames, 6 blocks of one BLSTM (128 hidden units per direction) followed by a linear layer
DPRNN_PAPER = DualPathConfig(
    encoder_channels=64, d_model=64, chunk_size=100, num_blocks=6,
    path_model=LSTMPathModel(hidden_size=128, num_layers=1), linear_after_intra_inter=True,
)


class DualPathMasker(nn.Module):
    """Mask network: encoder features ``[B, C, L]`` -> masks ``[B, S, C, L]`` (non-negative).

    See the module docstring and :class:`DualPathConfig` for the arguments (``in_channels`` is
    the encoder's C). With ``checkpointing`` each dual-path block recomputes its activations
    in the backward pass (less memory, ~30% more compute while training; no effect in eval).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_sources: int,
        d_model: int,
        chunk_size: int,
        num_blocks: int,
        path_model: PathModel,
        norm: str,
        skip_around_intra: bool,
        linear_after_intra_inter: bool,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.num_sources = num_sources
        self.d_model = d_model
        self.chunk_size = chunk_size
        self.checkpointing = checkpointing
        self.norm = build_norm(norm, in_channels)
        self.in_proj = nn.Linear(in_channels, d_model, bias=False)
        self.blocks = nn.ModuleList(
            DualPathBlock(
                intra=path_model.build(d_model, intra=True),
                inter=path_model.build(d_model, intra=False),
                d_model=d_model, model_out=path_model.out_channels(d_model), norm=norm,
                skip_around_intra=skip_around_intra,
                linear_after_intra_inter=linear_after_intra_inter,
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

    Built from a :class:`DualPathConfig` (default: :data:`SEPFORMER_WSJ0_2MIX`, the published
    WSJ0-2mix SepFormer), from the flat keywords of a YAML ``model`` section, or both (the
    keywords replace fields of the config)::

        SepFormer()                                   # SEPFORMER_WSJ0_2MIX
        SepFormer(DualPathConfig(d_model=64, path_model=TransformerPathModel(nhead=4)))
        SepFormer(d_model=64, nhead=4)                # the same, as YAML writes it
        SepFormer(DPRNN_PAPER, num_sources=3)         # = DPRNN(num_sources=3)

    The flat keywords are the fields of :class:`DualPathConfig` without ``path_model``, plus
    ``block_type`` (``"transformer"`` or ``"lstm"``), the fields of
    :class:`TransformerPathModel` and ``lstm_hidden_size`` / ``lstm_layers`` / ``dropout``
    for :class:`LSTMPathModel`. Bad values raise :class:`~audionets.errors.ArgumentError`
    (a ValueError) naming the argument.

    Output length equals input length: as SpeechBrain's separator, the decoder output is
    zero-padded or trimmed to T (inputs shorter than the encoder kernel are zero-padded first).

    ``model.architecture`` is the :class:`DualPathConfig`; ``model.config`` is the
    ``{"name": ..., **flat keywords}`` dict that rebuilds the model.
    """

    registry_name = "sepformer"
    #: the config that the flat keywords replace fields of when no config is given
    preset: ClassVar[DualPathConfig] = SEPFORMER_WSJ0_2MIX
    #: the keyword arguments (read by :func:`audionets.registry.check_kwargs`)
    config_keys: ClassVar[tuple[str, ...]] = DualPathConfig.keywords()

    def __init__(self, architecture: DualPathConfig | None = None, /, **settings: Any) -> None:
        super().__init__()
        architecture = architecture if architecture is not None else self.preset
        if settings:
            architecture = architecture.with_keywords(**settings)
        self.architecture = architecture
        self.config = {"name": self.registry_name} | architecture.keyword_settings()
        self.num_sources = architecture.num_sources
        self.sample_rate = architecture.sample_rate
        self.encoder = Encoder(
            kernel_size=architecture.encoder_kernel_size,
            channels=architecture.encoder_channels, stride=architecture.encoder_stride,
        )
        self.masker = DualPathMasker(
            in_channels=architecture.encoder_channels, num_sources=architecture.num_sources,
            d_model=architecture.d_model, chunk_size=architecture.chunk_size,
            num_blocks=architecture.num_blocks, path_model=architecture.path_model,
            norm=architecture.norm, skip_around_intra=architecture.skip_around_intra,
            linear_after_intra_inter=architecture.linear_after_intra_inter,
            checkpointing=architecture.checkpointing,
        )
        self.decoder = Decoder(
            kernel_size=architecture.decoder_kernel_size or architecture.encoder_kernel_size,
            channels=architecture.encoder_channels,
            stride=architecture.decoder_stride or self.encoder.stride,
        )

    @property
    def hop_length(self) -> int:
        """Samples between encoder frames (the encoder stride)."""
        return self.encoder.stride

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
    """Dual-path RNN (Luo et al., 2020): :class:`SepFormer` whose preset is :data:`DPRNN_PAPER`
    (bidirectional-LSTM blocks); the same arguments."""

    registry_name = "dprnn"
    preset = DPRNN_PAPER
