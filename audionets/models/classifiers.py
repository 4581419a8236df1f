"""Audio classifiers: ``wav[B, T] -> logits[B, num_classes]`` on any front-end.

Every classifier turns the waveform into features ``[B, F, T']`` with its front-end
(``frontend: {name: logmel, n_mels: 64, ...}``, see :mod:`audionets.frontends`), optionally
normalises each feature channel (``input_norm``), in training optionally masks bands and
spans of it (``spec_augment``), and classifies the sequence of frames:

- ``td_cnn`` :class:`TimeDomainCNN`: the M5 family (Dai et al., 2017) on the raw waveform.
- ``tf_cnn`` :class:`TimeFrequencyCNN`: frequency bins as the input channels of a Conv1d over
  frames.
- ``cnn2d`` :class:`SpectrogramCNN`: Conv2d blocks over the (frequency, frame) image, so one
  set of filters serves every pitch and band (shift-equivariant in frequency, not only time).
- ``rnn_classifier`` :class:`RecurrentClassifier`: RNN / MGU / GRU / LSTM over frames.
- ``attention_classifier`` :class:`AttentionClassifier`: a transformer encoder over frames.
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import torch
from torch import nn

from audionets.errors import ArgumentError, ConfigError
from audionets.nn import onnx_ops
from audionets.nn.attention import TransformerEncoderLayer
from audionets.nn.conv import ConvBlock1d, ConvBlock2d, per_layer
from audionets.nn.positional import sinusoidal_encoding
from audionets.nn.spec_augment import build_spec_augment
from audionets.models.rnn import build_recurrent
from audionets.registry import FRONTENDS, MODELS

INPUT_NORMS = ("none", "batch", "instance")


def build_frontend(
    spec: dict[str, Any], sample_rate: int, where: str = "frontend"
) -> nn.Module:
    """Build a front-end from its config, passing the model's ``sample_rate`` when it takes one.

    Raises:
        ArgumentError: naming the argument ``where`` (and its keys: ``frontend.n_fft``) when
            ``spec`` has no name, an unknown name or argument, a bad value, or a
            ``sample_rate`` that differs from the model's.
    """
    import audionets.frontends  # noqa: F401  (registers the front-ends)

    if not isinstance(spec, dict) or "name" not in spec:
        raise ArgumentError(f"{where} must be a mapping with a 'name', e.g. {{name: logmel}}",
                            where)
    spec = dict(spec)
    name = spec.pop("name")
    if "sample_rate" in spec and spec["sample_rate"] != sample_rate:
        raise ArgumentError(
            f"{where}.sample_rate={spec['sample_rate']} differs from the model's sample_rate="
            f"{sample_rate}; remove {where}.sample_rate", where
        )
    try:
        if "sample_rate" in inspect.signature(FRONTENDS.get(name)).parameters:
            spec["sample_rate"] = sample_rate
        return FRONTENDS.build(name, _where=where, **spec)
    except ConfigError as err:  # the front-end's own messages name frontend.<key>
        raise ArgumentError(str(err), where) from None


def build_input_norm(kind: str, channels: int, where: str = "input_norm") -> nn.Module:
    """Per-feature-channel normalisation of ``[B, F, T']``.

    ``"batch"``: BatchNorm1d over F (statistics over batch and frames, learned affine);
    ``"instance"``: InstanceNorm1d over F (each example's own statistics over frames, learned
    affine; robust to gain changes); ``"none"``: identity.
    """
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    if kind == "instance":
        return nn.InstanceNorm1d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ArgumentError(f"unknown {where} {kind!r}; choose one of: {', '.join(INPUT_NORMS)}",
                        where)


POOLINGS = ("mean", "max", "stats")


def global_pool(features: torch.Tensor, kind: str) -> torch.Tensor:
    """Pool ``[B, C, T'']`` over time: ``"mean"``/``"max"`` -> ``[B, C]``; ``"stats"`` -> the
    mean and standard deviation side by side, ``[B, 2C]`` (x-vector statistics pooling: keeps
    how much each feature fluctuates, e.g. amplitude modulation, which a mean averages away).
    """
    if kind == "mean":
        return features.mean(dim=-1)
    if kind == "max":
        return features.amax(dim=-1)
    return torch.cat((features.mean(dim=-1), features.std(dim=-1, correction=0)), dim=-1)


def _check_common(num_classes: int, sample_rate: int) -> None:
    if int(num_classes) < 1:
        raise ArgumentError(f"num_classes must be >= 1, got {num_classes}", "num_classes")
    if int(sample_rate) < 1:
        raise ArgumentError(f"sample_rate must be a positive int, got {sample_rate}",
                            "sample_rate")


class _FeatureClassifier(nn.Module):
    """What every classifier here starts with: ``wav[B, T] -> features[B, F, T']`` by the
    front-end, the per-channel input norm and, in training only, the SpecAugment masks.

    Subclasses build their body on :attr:`feature_channels` (``F``) and call :meth:`features`.
    """

    def __init__(self, num_classes: int, sample_rate: int, frontend: dict[str, Any],
                 input_norm: str, spec_augment: dict[str, Any] | None) -> None:
        super().__init__()
        _check_common(num_classes, sample_rate)
        self.num_classes = int(num_classes)
        self.sample_rate = int(sample_rate)
        self.frontend = build_frontend(frontend, self.sample_rate)
        self.feature_channels = int(self.frontend.out_channels)
        self.input_norm = build_input_norm(input_norm, self.feature_channels)
        self.spec_augment = build_spec_augment(spec_augment)

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav[B, T] -> [B, F, T']``: front-end, input norm, (in training) masks."""
        return self.spec_augment(self.input_norm(self.frontend(wav)))


class _ConvClassifier(_FeatureClassifier):
    """Front-end, input norm, a stack of :class:`ConvBlock1d`, global pooling, linear.

    Shapes: ``wav[B, T] -> features[B, F, T'] -> [B, channels[-1], T''] -> logits[B, C]``.
    """

    def __init__(
        self,
        *,
        frontend: dict[str, Any],
        num_classes: int,
        sample_rate: int,
        channels: Sequence[int],
        kernel_sizes: int | Sequence[int],
        strides: int | Sequence[int],
        pool: int | Sequence[int],
        groups: int | Sequence[int],
        batch_norm: bool,
        residual: bool,
        dropout: float,
        activation: str,
        input_norm: str,
        pooling: str,
        spec_augment: dict[str, Any] | None,
    ) -> None:
        super().__init__(num_classes, sample_rate, frontend, input_norm, spec_augment)
        if pooling not in POOLINGS:
            raise ArgumentError(f"unknown pooling {pooling!r}; choose one of: "
                                f"{', '.join(POOLINGS)}", "pooling")
        self.pooling = pooling
        if not isinstance(channels, (list, tuple)) or not channels:
            raise ArgumentError("channels must be a non-empty list of ints, e.g. [64, 128]",
                                "channels")
        layers = len(channels)
        kernel_sizes = per_layer(kernel_sizes, layers, "kernel_sizes")
        strides = per_layer(strides, layers, "strides")
        pools = per_layer(pool, layers, "pool")
        groups = per_layer(groups, layers, "groups")
        in_channels = self.feature_channels
        blocks = []
        for i, out_channels in enumerate(channels):
            blocks.append(ConvBlock1d(
                in_channels, int(out_channels), kernel_sizes[i], stride=strides[i],
                groups=groups[i], batch_norm=batch_norm, activation=activation, pool=pools[i],
                residual=residual, dropout=dropout, layer=i,
            ))
            in_channels = int(out_channels)
        self.blocks = nn.Sequential(*blocks)
        pooled = 2 * in_channels if pooling == "stats" else in_channels
        self.head = nn.Linear(pooled, self.num_classes)

    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav[B, T] -> [B, D]``: the pooled features the linear head sees (D is
        ``channels[-1]``, doubled for ``pooling="stats"``)."""
        return global_pool(self.blocks(self.features(wav)), self.pooling)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav[B, T] -> logits[B, num_classes]``."""
        return self.head(self.embed(wav))


@MODELS.register("td_cnn")
class TimeDomainCNN(_ConvClassifier):
    """M5-style CNN on the raw waveform (Dai et al., 2017, "Very deep convolutional neural
    networks for raw waveforms").

    ``wav[B, T] -> [B, 1, T]`` (waveform front-end) ``->`` a wide strided first Conv1d
    (kernel 80, stride 4: ~10 ms receptive field at 8 kHz, 5 ms at 16 kHz) ``->`` blocks of
    Conv1d + BN + activation + max pooling ``->`` global pooling (``pooling``, mean by
    default) ``-> logits[B, C]``.

    Args:
        num_classes: number of classes C.
        sample_rate: input sample rate in Hz (passed to the front-end).
        frontend: front-end config; default ``{name: waveform}``.
        channels: output channels of each block (its length is the depth).
        kernel_sizes, strides, pool, groups: per block, a list or one int for all blocks.
        batch_norm: BatchNorm1d after each convolution.
        residual: skip connection around each block (1x1 projection when shapes differ).
        dropout: dropout after each block.
        activation: activation name (see :mod:`audionets.nn.activations`).
        input_norm: ``"none"``, ``"batch"`` or ``"instance"`` normalisation of the front-end
            output per channel (see :func:`build_input_norm`).
        pooling: global pooling over time, ``"mean"``, ``"max"`` or ``"stats"`` (mean and
            standard deviation, see :func:`global_pool`).
        spec_augment: masks of bands and spans of the normalised features in training,
            e.g. ``{freq_masks: 2, freq_width: 8, time_masks: 2, time_width: 10}``
            (:mod:`audionets.nn.spec_augment`); ``None`` (the default) for none.
    """

    def __init__(
        self,
        num_classes: int,
        sample_rate: int,
        frontend: dict[str, Any] | None = None,
        channels: Sequence[int] = (32, 32, 64, 64),
        kernel_sizes: int | Sequence[int] = (80, 3, 3, 3),
        strides: int | Sequence[int] = (4, 1, 1, 1),
        pool: int | Sequence[int] = 4,
        groups: int | Sequence[int] = 1,
        batch_norm: bool = True,
        residual: bool = False,
        dropout: float = 0.0,
        activation: str = "relu",
        input_norm: str = "none",
        pooling: str = "mean",
        spec_augment: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            frontend=frontend if frontend is not None else {"name": "waveform"},
            num_classes=num_classes, sample_rate=sample_rate, channels=channels,
            kernel_sizes=kernel_sizes, strides=strides, pool=pool, groups=groups,
            batch_norm=batch_norm, residual=residual, dropout=dropout, activation=activation,
            input_norm=input_norm, pooling=pooling, spec_augment=spec_augment,
        )


@MODELS.register("tf_cnn")
class TimeFrequencyCNN(_ConvClassifier):
    """CNN over frames of a time-frequency representation, frequency bins as channels.

    ``wav[B, T] -> features[B, F, T']`` (log-mel or STFT front-end) ``->`` per-bin input
    normalisation ``->`` blocks of Conv1d over frames + BN + activation + max pooling ``->``
    global pooling over frames ``-> logits[B, C]``. The first convolution mixes all F
    bins, so the network is translation-invariant in time but not in frequency.

    Args: as :class:`TimeDomainCNN`; a list-valued option must have one entry per
    ``channels`` entry. The defaults are ``frontend: {name: logmel}``, kernel 3,
    stride 1, pooling 2 and ``input_norm: batch``.
    """

    def __init__(
        self,
        num_classes: int,
        sample_rate: int,
        frontend: dict[str, Any] | None = None,
        channels: Sequence[int] = (64, 64, 128, 128),
        kernel_sizes: int | Sequence[int] = 3,
        strides: int | Sequence[int] = 1,
        pool: int | Sequence[int] = 2,
        groups: int | Sequence[int] = 1,
        batch_norm: bool = True,
        residual: bool = False,
        dropout: float = 0.1,
        activation: str = "relu",
        input_norm: str = "batch",
        pooling: str = "mean",
        spec_augment: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            frontend=frontend if frontend is not None else {"name": "logmel"},
            num_classes=num_classes, sample_rate=sample_rate, channels=channels,
            kernel_sizes=kernel_sizes, strides=strides, pool=pool, groups=groups,
            batch_norm=batch_norm, residual=residual, dropout=dropout, activation=activation,
            input_norm=input_norm, pooling=pooling, spec_augment=spec_augment,
        )


@MODELS.register("cnn2d")
class SpectrogramCNN(_FeatureClassifier):
    """A CNN over the log-mel spectrogram as an image: Conv2d over frequency and time.

    ``wav[B, T] -> features[B, F, T']`` ``->`` per-band input normalisation ``-> [B, 1, F, T']
    ->`` blocks of Conv2d(k x k) + BN + activation + max-pool (2 x 2 by default)
    ``-> [B, C, F'', T''] ->`` mean over frequency ``->`` global pooling over frames
    (``pooling``) ``-> logits[B, C]``.

    Unlike :class:`TimeFrequencyCNN`, whose first convolution mixes all F bins at once (a
    pattern learned at one pitch says nothing about another), the same small filters slide
    over frequency: a harmonic comb, a sweep or a noise edge learned at one pitch or band is
    recognised at any other, which is what lets a small training set generalise (the
    usual design for ESC-50 and keyword spotting: Piczak 2015, Sainath & Parada 2015).

    Args:
        num_classes, sample_rate, frontend (default ``{name: logmel}``), input_norm,
            spec_augment: as :class:`TimeFrequencyCNN`.
        channels: output channels of each block (its length is the depth).
        kernel_sizes: odd kernel size per block (a list or one int).
        pool: max-pooling size over both axes per block (a list or one int).
        batch_norm, activation, dropout: as :class:`TimeFrequencyCNN`.
        pooling: over frames after the mean over frequency: ``"mean"``, ``"max"`` or
            ``"stats"`` (see :func:`global_pool`).
    """

    def __init__(
        self,
        num_classes: int,
        sample_rate: int,
        frontend: dict[str, Any] | None = None,
        channels: Sequence[int] = (16, 32, 64, 128),
        kernel_sizes: int | Sequence[int] = 3,
        pool: int | Sequence[int] = 2,
        batch_norm: bool = True,
        dropout: float = 0.1,
        activation: str = "relu",
        input_norm: str = "batch",
        pooling: str = "mean",
        spec_augment: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(num_classes, sample_rate, frontend or {"name": "logmel"}, input_norm,
                         spec_augment)
        if pooling not in POOLINGS:
            raise ArgumentError(f"unknown pooling {pooling!r}; choose one of: "
                                f"{', '.join(POOLINGS)}", "pooling")
        if not isinstance(channels, (list, tuple)) or not channels:
            raise ArgumentError("channels must be a non-empty list of ints, e.g. [16, 32]",
                                "channels")
        self.pooling = pooling
        kernel_sizes = per_layer(kernel_sizes, len(channels), "kernel_sizes")
        pools = per_layer(pool, len(channels), "pool")
        blocks, in_channels = [], 1
        for i, out_channels in enumerate(channels):
            blocks.append(ConvBlock2d(in_channels, int(out_channels), kernel_sizes[i],
                                      batch_norm=batch_norm, activation=activation,
                                      pool=pools[i], dropout=dropout, layer=i))
            in_channels = int(out_channels)
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(2 * in_channels if pooling == "stats" else in_channels,
                              self.num_classes)

    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav[B, T] -> [B, D]``: the pooled features the linear head sees."""
        image = self.features(wav).unsqueeze(1)  # [B, 1, F, T']
        return global_pool(self.blocks(image).mean(dim=2), self.pooling)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav[B, T] -> logits[B, num_classes]``."""
        return self.head(self.embed(wav))


def _pool_sequence(outputs: torch.Tensor, pooling: str, bidirectional: bool) -> torch.Tensor:
    """``[B, T', D * H] -> [B, D * H]`` by the last step (per direction) or the mean."""
    if pooling == "mean":
        return outputs.mean(dim=1)
    if not bidirectional:
        return outputs[:, -1]
    forward_last, backward_last = outputs.chunk(2, dim=-1)
    return torch.cat((forward_last[:, -1], backward_last[:, 0]), dim=-1)


@MODELS.register("rnn_classifier")
class RecurrentClassifier(_FeatureClassifier):
    """A recurrent network over the frames of a front-end.

    ``wav[B, T] -> features[B, F, T'] -> [B, T', F] ->`` RNN/MGU/GRU/LSTM ``->
    outputs[B, T', D * hidden_size] ->`` pooling ``-> logits[B, C]`` (D = 2 if bidirectional).
    ``pooling: last`` takes the forward direction's last output and the backward direction's
    first output (each direction's summary of the whole sequence); ``mean`` averages over
    frames.

    Args:
        num_classes, sample_rate, frontend (default ``{name: logmel}``), input_norm,
            spec_augment: as :class:`TimeFrequencyCNN`.
        cell: ``"rnn"``, ``"mgu"`` (see :mod:`audionets.models.rnn`), ``"gru"`` or ``"lstm"``.
        hidden_size: units per direction and layer.
        num_layers: stacked recurrent layers.
        bidirectional: run a second layer backwards in time and concatenate.
        pooling: ``"last"`` or ``"mean"``.
        dropout: between recurrent layers and before the linear head.
    """

    def __init__(
        self,
        num_classes: int,
        sample_rate: int,
        frontend: dict[str, Any] | None = None,
        cell: str = "gru",
        hidden_size: int = 128,
        num_layers: int = 2,
        bidirectional: bool = True,
        pooling: str = "mean",
        dropout: float = 0.1,
        input_norm: str = "batch",
        spec_augment: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(num_classes, sample_rate, frontend or {"name": "logmel"}, input_norm,
                         spec_augment)
        if pooling not in ("last", "mean"):
            raise ArgumentError(f"unknown pooling {pooling!r}; choose one of: last, mean",
                                "pooling")
        self.pooling = pooling
        self.bidirectional = bool(bidirectional)
        self.rnn = build_recurrent(
            cell, self.feature_channels, hidden_size, num_layers, self.bidirectional, dropout
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if self.bidirectional else 1), self.num_classes)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav[B, T] -> logits[B, num_classes]``."""
        frames = self.features(wav).transpose(1, 2)  # [B, T', F]
        if not torch.jit.is_scripting():
            if onnx_ops.exporting_onnx() and onnx_ops.supports(self.rnn):  # any frame count
                return self._classify(onnx_ops.recurrent(self.rnn, frames))
        outputs, _ = self.rnn(frames)
        return self._classify(outputs)

    def _classify(self, outputs: torch.Tensor) -> torch.Tensor:
        """``outputs[B, T', D * hidden_size] -> logits[B, num_classes]``."""
        summary = _pool_sequence(outputs, self.pooling, self.bidirectional)
        return self.head(self.dropout(summary))


@MODELS.register("attention_classifier")
class AttentionClassifier(_FeatureClassifier):
    """A transformer encoder over the frames of a front-end.

    ``wav[B, T] -> features[B, F, T'] -> [B, T', F] ->`` linear to ``d_model`` ``+``
    positional encoding ``->`` [CLS token prepended] ``->`` ``num_layers`` pre-norm
    transformer layers ``->`` final LayerNorm ``->`` CLS output or mean over frames
    ``-> logits[B, C]``.

    Args:
        num_classes, sample_rate, frontend (default ``{name: logmel}``), input_norm,
            spec_augment: as :class:`TimeFrequencyCNN`.
        d_model: model width; num_heads must divide it.
        num_heads: attention heads.
        num_layers: transformer layers.
        ff_dim: hidden width of the feed-forward blocks.
        dropout: dropout in attention, feed-forward and residual branches.
        activation: activation of the feed-forward blocks.
        positional: ``"sinusoidal"`` (any length), ``"learned"`` (at most ``max_frames``
            frames) or ``"none"``.
        max_frames: length of the learned positional table.
        pooling: ``"cls"`` (a learned token prepended to the frames) or ``"mean"``.
    """

    def __init__(
        self,
        num_classes: int,
        sample_rate: int,
        frontend: dict[str, Any] | None = None,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int = 256,
        dropout: float = 0.1,
        activation: str = "gelu",
        positional: str = "sinusoidal",
        max_frames: int = 1024,
        pooling: str = "cls",
        input_norm: str = "batch",
        spec_augment: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(num_classes, sample_rate, frontend or {"name": "logmel"}, input_norm,
                         spec_augment)
        if positional not in ("sinusoidal", "learned", "none"):
            raise ArgumentError(
                f"unknown positional {positional!r}; choose one of: sinusoidal, learned, none",
                "positional",
            )
        if pooling not in ("cls", "mean"):
            raise ArgumentError(f"unknown pooling {pooling!r}; choose one of: cls, mean",
                                "pooling")
        if d_model % num_heads:
            raise ArgumentError(
                f"d_model={d_model} must be divisible by num_heads={num_heads}",
                "d_model", "num_heads",
            )
        if positional == "sinusoidal" and d_model % 2:
            raise ArgumentError(f"d_model={d_model} must be even for sinusoidal positions",
                                "d_model")
        self.positional = positional
        self.pooling = pooling
        self.max_frames = int(max_frames)
        self.proj = nn.Linear(self.feature_channels, d_model)
        # None when unused (not in the state dict), so that TorchScript drops their branches
        self.position: nn.Parameter | None = None
        self.cls: nn.Parameter | None = None
        if positional == "learned":
            self.position = nn.Parameter(torch.zeros(self.max_frames, d_model))
            nn.init.normal_(self.position, std=0.02)
        if pooling == "cls":
            self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
            nn.init.normal_(self.cls, std=0.02)
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(d_model, num_heads, ff_dim, dropout, activation)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, self.num_classes)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav[B, T] -> logits[B, num_classes]``."""
        x = self.proj(self.features(wav).transpose(1, 2))  # [B, T', d]
        frames = x.shape[1]
        if self.positional == "sinusoidal":
            x = x + sinusoidal_encoding(frames, x.shape[-1], device=x.device, dtype=x.dtype)
        position = self.position
        if position is not None:  # positional == "learned"
            if frames > self.max_frames:
                raise ConfigError(
                    f"the input has {frames} frames but the model's max_frames="
                    f"{self.max_frames}; raise max_frames or use positional='sinusoidal'"
                )
            x = x + position[:frames]
        cls = self.cls
        if cls is not None:  # pooling == "cls"
            x = torch.cat((cls.expand(x.shape[0], -1, -1), x), dim=1)
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)
        summary = x[:, 0] if self.pooling == "cls" else x.mean(dim=1)
        return self.head(summary)
