"""Front-ends: waveform ``[B, T]`` -> features ``[B, F, T']`` for Conv1d-style models.

Every front-end is a :class:`Frontend` (an ``nn.Module``) with ``out_channels`` (F) and, where
the transform is invertible, ``inverse(features, length) -> [B, T]``. They are registered in
:data:`audionets.registry.FRONTENDS` as ``waveform``, ``stft``, ``logmel`` and ``filterbank``,
so a model config can say ``frontend: {name: logmel, n_mels: 64}``.

Padding: :class:`STFT` and :class:`LogMel` centre their frames (``center=True``) with zero
padding (``pad_mode="constant"``, librosa's default since 0.10), which works for inputs of any
length, including shorter than one window.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from audionets.errors import ConfigError, check_choice
from audionets.nn.shapes import fit
from audionets.registry import FRONTENDS

WINDOWS: dict[str, Callable[[int], torch.Tensor]] = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
    "rectangular": torch.ones,
}
STFT_MODES = ("magnitude", "log_magnitude", "complex")
FILTERBANK_KINDS = ("free", "param_sinc", "stft", "analytic_free")


def _check_positive(**values: int) -> None:
    for key, value in values.items():
        if int(value) < 1:
            raise ConfigError(f"frontend.{key} must be a positive int, got {value}")


class Frontend(nn.Module):
    """Base class: ``forward(wav [B, T]) -> features [B, out_channels, T']``.

    Subclasses set the int attribute ``out_channels`` (F) in their constructor.
    """

    __jit_unused_properties__ = ["mel_filters"]  # TorchScript compiles forward only

    @staticmethod
    def _check_input(wav: torch.Tensor) -> None:
        if wav.dim() != 2:
            raise ValueError(f"front-ends expect a [batch, time] waveform, got shape "
                             f"{list(wav.shape)}")

    def inverse(self, features: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Map ``features [B, F, T']`` back to ``wav [B, length]`` (invertible front-ends only)."""
        raise NotImplementedError(
            f"the {type(self).__name__} front-end is not invertible; use 'waveform', 'stft' "
            "(mode='complex') or 'filterbank' where a model must produce audio"
        )


@FRONTENDS.register("waveform")
class Waveform(Frontend):
    """Identity front-end for time-domain models: ``[B, T] -> [B, 1, T]``."""

    out_channels = 1

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        self._check_input(wav)
        return wav.unsqueeze(1)

    def inverse(self, features: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """``[B, 1, T] -> [B, T]``, trimmed to ``length`` when given."""
        wav = features.squeeze(1)
        return wav if length is None else wav[..., :length]


@FRONTENDS.register("stft")
class STFT(Frontend):
    """Short-time Fourier transform with ``torch.stft`` (centred frames, one-sided).

    ``F = n_fft // 2 + 1`` frequency bins and ``T' = ceil((T - 1) / hop_length) + 1`` frames:
    the input is zero-padded on the right so that the last frame is centred at or after the
    last sample. These are ``torch.stft(center=True, pad_mode="constant")``'s frames plus, when
    ``T % hop_length`` is neither 0 nor 1, one more, without which the last samples would be
    seen only by the tail of one window and could not be recovered to float32 precision.

    Modes:
        ``"magnitude"``: ``|X|`` as ``[B, F, T']``.
        ``"log_magnitude"``: ``log(|X| + log_offset)`` as ``[B, F, T']``.
        ``"complex"``: real parts then imaginary parts stacked on the channel axis,
        ``[B, 2F, T']``, so the output stays a real tensor for Conv1d.

    ``inverse`` uses ``torch.istft(length=...)`` and reconstructs any input length exactly
    (to float precision) in complex mode. The magnitude modes dropped the phase, so their
    inverse needs ``phase [B, F, T']`` in radians (e.g. ``torch.angle(stft.spectrogram(mix))``)
    and raises ValueError without it.
    """

    def __init__(
        self,
        n_fft: int = 512,
        hop_length: int = 128,
        win_length: int | None = None,
        window: str = "hann",
        mode: str = "magnitude",
        log_offset: float = 1e-6,
    ) -> None:
        super().__init__()
        win_length = n_fft if win_length is None else win_length
        _check_positive(n_fft=n_fft, hop_length=hop_length, win_length=win_length)
        check_choice("frontend.window", window, list(WINDOWS))
        check_choice("frontend.mode", mode, STFT_MODES)
        if win_length > n_fft:
            raise ConfigError(f"frontend.win_length={win_length} must be <= n_fft={n_fft}")
        if hop_length > win_length:
            raise ConfigError(
                f"frontend.hop_length={hop_length} must be <= win_length={win_length}, "
                "or samples between windows are lost"
            )
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.mode, self.log_offset = mode, log_offset
        self.register_buffer("window", WINDOWS[window](win_length), persistent=False)
        bins = n_fft // 2 + 1
        self.out_channels = 2 * bins if mode == "complex" else bins
        # NOLA: squared windows overlap-added at the hop stay above zero everywhere
        overlap = self.window.pow(2).reshape(-1).double()
        overlap = F.pad(overlap, (0, (-len(overlap)) % hop_length)).reshape(-1, hop_length).sum(0)
        self.invertible = bool(overlap.min() > 1e-10)

    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """Complex STFT ``[B, T] -> [B, n_fft // 2 + 1, T']``."""
        self._check_input(wav)
        length = wav.shape[-1]
        hop = self.hop_length  # (1 - length) % hop, with no negative operand (ONNX truncates)
        wav = fit(wav, length + (hop - (length - 1) % hop) % hop, max_pad=hop)
        return torch.stft(
            wav, self.n_fft, self.hop_length, self.win_length, self.window,
            center=True, pad_mode="constant", return_complex=True,
        )

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = self.spectrogram(wav)
        if self.mode == "complex":
            return torch.cat([spec.real, spec.imag], dim=1)
        magnitude = spec.abs()
        if self.mode == "log_magnitude":
            return torch.log(magnitude + self.log_offset)
        return magnitude

    def inverse(
        self, features: torch.Tensor, length: int | None = None, phase: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``features [B, F', T'] -> wav [B, length]`` with ``torch.istft``.

        Without ``length`` the output has ``hop_length * (T' - 1)`` samples. Needs a window
        whose squared overlap-add at ``hop_length`` never vanishes (NOLA): not so for a
        hann/blackman window with ``hop_length == win_length`` (a ValueError says so).
        """
        if not self.invertible:
            raise ValueError(
                f"STFT(window with win_length={self.win_length}, hop_length={self.hop_length}) "
                "cannot be inverted: its squared windows overlap-add to zero somewhere (NOLA); "
                "use a hop_length below win_length"
            )
        if self.mode == "complex":
            real, imag = features.chunk(2, dim=1)
            spec = torch.complex(real, imag)
        else:
            if phase is None:
                raise ValueError(
                    f"STFT(mode={self.mode!r}) discarded the phase: pass phase= (radians, "
                    "[B, F, T']) to inverse, or use mode='complex'"
                )
            magnitude = features
            if self.mode == "log_magnitude":
                magnitude = (features.exp() - self.log_offset).clamp(min=0)
            spec = torch.polar(magnitude, phase)
        return torch.istft(
            spec, self.n_fft, self.hop_length, self.win_length, self.window,
            center=True, length=length,
        )


@FRONTENDS.register("logmel")
class LogMel(Frontend):
    """Log mel spectrogram: ``log(mel_power + log_offset)``, ``[B, T] -> [B, n_mels, T']``.

    torchaudio's ``MelSpectrogram`` (power 2, hann window, centred frames, zero padding) with
    a mel filterbank equal to ``librosa.filters.mel`` for the same ``norm`` and ``mel_scale``
    (``mel_scale="htk"`` is librosa's ``htk=True``) at even sample rates (at odd ones torchaudio
    places the FFT bins up to ``sample_rate // 2``: about 0.1 % apart). ``T' = T // hop_length
    + 1``. Computed in float32 also under autocast (float16 would overflow on loud input).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 160,
        n_mels: int = 64,
        f_min: float = 0.0,
        f_max: float | None = None,
        log_offset: float = 1e-6,
        norm: str | None = "slaney",
        mel_scale: str = "slaney",
        win_length: int | None = None,
    ) -> None:
        super().__init__()
        import torchaudio

        _check_positive(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
        check_choice("frontend.mel_scale", mel_scale, ("slaney", "htk"))
        if norm is not None:
            check_choice("frontend.norm", norm, ("slaney",))
        f_max = sample_rate / 2 if f_max is None else f_max
        if not 0 <= f_min < f_max <= sample_rate / 2:
            raise ConfigError(
                f"frontend needs 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, "
                f"f_max={f_max}, sample_rate={sample_rate}"
            )
        self.sample_rate, self.log_offset = sample_rate, log_offset
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
            f_min=f_min, f_max=f_max, n_mels=n_mels, power=2.0, center=True,
            pad_mode="constant", norm=norm, mel_scale=mel_scale,
        )
        self.out_channels = n_mels

    @property
    def mel_filters(self) -> torch.Tensor:
        """The mel filterbank ``[n_mels, n_fft // 2 + 1]`` (librosa's layout)."""
        return self.mel.mel_scale.fb.T

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        self._check_input(wav)
        if not torch.jit.is_scripting():  # (TorchScript has no autocast to turn off)
            # in float32 whatever the autocast: a loud tone's mel power overflows float16 (inf)
            with torch.autocast(wav.device.type, enabled=False):
                return self._log_mel(wav)
        return self._log_mel(wav)

    def _log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(wav.float()) + self.log_offset)


@FRONTENDS.register("filterbank")
class Filterbank(Frontend):
    """A learnable or fixed 1-D filterbank from ``asteroid_filterbanks.make_enc_dec``.

    ``kind``: ``"free"`` (learned Conv1d filters), ``"param_sinc"`` (learned band-pass
    cut-offs, SincNet; needs an odd ``kernel_size``, so an even one is increased by one, as
    asteroid does), ``"analytic_free"`` (learned, analytic: real then imaginary halves) or
    ``"stft"`` (fixed sqrt-Hann DFT filters: real parts then imaginary parts, ``n_filters``
    even and ``>= kernel_size``). ``min_low_hz`` and ``min_band_hz`` are the lowest cut-off
    and narrowest band of ``param_sinc`` (ignored by the other kinds).

    The input is zero-padded by ``kernel_size - stride`` on both sides (plus up to ``stride - 1``
    on the right to complete the last hop), so that every sample is seen by the same number of
    windows. ``T' = (T + 2 (kernel_size - stride) + extra - kernel_size) // stride + 1``.
    ``forward`` returns the encoder output ``[B, out_channels, T']``; ``inverse`` applies the
    matching decoder (its own filters; the transposed convolution) and trims the padding.
    For ``kind="stft"`` with ``stride`` dividing ``kernel_size / 2`` this reconstructs the
    input to float precision; learned kinds reconstruct only after training.
    """

    def __init__(
        self,
        kind: str = "free",
        n_filters: int = 64,
        kernel_size: int = 16,
        stride: int = 8,
        sample_rate: int = 8000,
        min_low_hz: float = 50.0,
        min_band_hz: float = 50.0,
    ) -> None:
        super().__init__()
        from asteroid_filterbanks import make_enc_dec

        check_choice("frontend.kind", kind, FILTERBANK_KINDS)
        _check_positive(n_filters=n_filters, kernel_size=kernel_size, stride=stride)
        if stride > kernel_size:
            raise ConfigError(
                f"frontend.stride={stride} must be <= kernel_size={kernel_size}, "
                "or samples between filters are lost"
            )
        if kind == "stft" and (n_filters % 2 or n_filters < kernel_size):
            raise ConfigError(
                f"frontend.n_filters={n_filters} must be even and >= kernel_size={kernel_size} "
                "for kind 'stft'"
            )
        if kind == "param_sinc" and kernel_size % 2 == 0:
            kernel_size += 1
        self.kind, self.kernel_size, self.stride = kind, kernel_size, stride
        extra = {}
        if kind == "param_sinc":
            extra = {"min_low_hz": min_low_hz, "min_band_hz": min_band_hz}
        self.encoder, self.decoder = make_enc_dec(
            kind, n_filters=n_filters, kernel_size=kernel_size, stride=stride,
            sample_rate=float(sample_rate), **extra,
        )
        self.out_channels = int(self.encoder.filterbank.n_feats_out)
        self.padding = kernel_size - stride

    def _right_padding(self, length: int) -> int:
        covered = length + 2 * self.padding - self.kernel_size
        return self.padding + (-covered) % self.stride

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        self._check_input(wav)
        padded = F.pad(wav, (self.padding, self._right_padding(wav.shape[-1])))
        return self.encoder(padded.unsqueeze(1))

    def inverse(self, features: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """``[B, out_channels, T'] -> [B, length]``; without ``length``, everything after the
        left padding except the last ``kernel_size - stride`` samples."""
        wav = self.decoder(features).squeeze(1)
        end = wav.shape[-1] - self.padding if length is None else self.padding + length
        wav = wav[..., self.padding:end]
        if length is not None and wav.shape[-1] < length:
            wav = F.pad(wav, (0, length - wav.shape[-1]))
        return wav
