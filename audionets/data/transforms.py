"""Waveform transforms shared by every dataset: crop/pad, gain, speed, noise at an SNR, and the
degradations that training augmentation draws from (peak level, DC offset, resampling through
another rate, band-limiting, synthetic reverberation).

All functions take and return float tensors with time last (``[..., T]``) and never modify
their input. Randomness comes only from an explicit ``torch.Generator`` so that datasets stay
reproducible; a separation example is cropped with one call on the stacked ``[S + 1, T]``
tensor so that the mixture and its sources stay aligned.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from audionets.errors import ConfigError

__all__ = [
    "active_rms",
    "add_dc_offset",
    "apply_gain_db",
    "band_limit",
    "centre_fit",
    "colored_noise",
    "crop_or_pad",
    "mix_at_snr",
    "resample_through",
    "reverberate",
    "rms",
    "scale_to_snr",
    "segment_length",
    "set_peak_db",
    "speed_perturb",
    "synthetic_rir",
    "time_shift",
]


def segment_length(segment_seconds: float | None, sample_rate: int) -> int | None:
    """Samples in a segment of ``segment_seconds`` (None stays None, meaning full length);
    ConfigError naming ``data.segment_seconds`` unless it is > 0."""
    if segment_seconds is None:
        return None
    if not float(segment_seconds) > 0:
        raise ConfigError(f"data.segment_seconds: must be > 0 or null, got {segment_seconds}")
    return int(round(float(segment_seconds) * sample_rate))


def crop_or_pad(wav: torch.Tensor, length: int, random: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Cut or zero-pad the last axis of ``wav`` to exactly ``length`` samples.

    Args:
        wav: [..., T] waveform(s); all leading channels get the same crop.
        length: output length in samples (> 0).
        random: crop at a uniformly random offset (training); otherwise keep the start
            (a deterministic crop for validation / test).
        generator: source of the random offset.
    Returns:
        [..., length]; a short input is padded with zeros at its end.
    """
    if length <= 0:
        raise ValueError(f"crop_or_pad: length must be > 0, got {length}")
    total = wav.shape[-1]
    if total > length:
        offset = 0
        if random:
            offset = int(torch.randint(0, total - length + 1, (1,), generator=generator))
        return wav[..., offset:offset + length]
    if total < length:
        return torch.nn.functional.pad(wav, (0, length - total))
    return wav


def centre_fit(wav: torch.Tensor, length: int) -> torch.Tensor:
    """``wav`` [..., T] centre-cropped, or zero-padded equally on both sides (the odd sample
    at the end), to exactly ``length`` samples: a centred word stays centred."""
    total = wav.shape[-1]
    if total >= length:
        start = (total - length) // 2
        return wav[..., start:start + length]
    left = (length - total) // 2
    return torch.nn.functional.pad(wav, (left, length - total - left))


def time_shift(wav: torch.Tensor, shift: int) -> torch.Tensor:
    """``wav`` [..., T] moved ``shift`` samples later (earlier when negative), zeros filling
    the space left; the samples moved past either end are dropped. Same length T."""
    total = wav.shape[-1]
    if shift == 0:
        return wav
    if abs(shift) >= total:
        return torch.zeros_like(wav)
    if shift > 0:
        return torch.nn.functional.pad(wav[..., :total - shift], (shift, 0))
    return torch.nn.functional.pad(wav[..., -shift:], (0, -shift))


def apply_gain_db(wav: torch.Tensor, gain_db: float | torch.Tensor) -> torch.Tensor:
    """Multiply ``wav`` [..., T] by ``10 ** (gain_db / 20)`` (a tensor gain broadcasts on [...])."""
    gain = torch.as_tensor(gain_db, dtype=wav.dtype, device=wav.device)
    if gain.ndim > 0:
        gain = gain.unsqueeze(-1)
    return wav * torch.pow(10.0, gain / 20.0)


def rms(wav: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Root mean square over the last axis: [..., T] -> [...], floored at ``sqrt(eps)``."""
    return torch.sqrt(wav.pow(2).mean(dim=-1).clamp_min(eps))


def active_rms(wav: np.ndarray | torch.Tensor, sample_rate: int, floor_db: float = -40.0) -> float:
    """RMS of ``wav`` [T] over its 20 ms frames within ``floor_db`` dB of the loudest frame.

    A simple stand-in for ITU-T P.56 active speech level (what wsj0-2mix normalises with):
    pauses do not lower the level of a talker who pauses a lot (nor zero padding). Computed in
    float64 (a tensor is converted).
    """
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().to("cpu", torch.float64).numpy()
    frame = max(1, int(0.02 * sample_rate))
    usable = (len(wav) // frame) * frame
    if usable == 0:
        return float(np.sqrt(np.mean(wav**2)) + 1e-12)
    energy = np.mean(wav[:usable].reshape(-1, frame) ** 2, axis=1)
    active = energy >= energy.max() * 10.0 ** (floor_db / 10.0)
    return float(np.sqrt(np.mean(energy[active])) + 1e-12)


def scale_to_snr(signal: torch.Tensor, noise: torch.Tensor,
                 snr_db: float | torch.Tensor) -> torch.Tensor:
    """``noise`` [..., T] rescaled so that ``10 log10(P_signal / P_noise) == snr_db``.

    Powers are means over the last axis of each leading channel. A silent noise is returned
    unchanged (there is nothing to scale).
    """
    if signal.shape[-1] != noise.shape[-1]:
        raise ValueError(
            f"scale_to_snr: signal has {signal.shape[-1]} samples but noise {noise.shape[-1]}; "
            "crop_or_pad the noise first"
        )
    snr = torch.as_tensor(snr_db, dtype=signal.dtype, device=signal.device)
    target = rms(signal) / torch.pow(10.0, snr / 20.0)
    return noise * (target / rms(noise)).unsqueeze(-1)


def mix_at_snr(signal: torch.Tensor, noise: torch.Tensor,
               snr_db: float | torch.Tensor) -> torch.Tensor:
    """``signal + noise'`` where ``noise'`` is ``noise`` scaled to ``snr_db`` dB below ``signal``.

    Args:
        signal, noise: [..., T] with the same T (broadcasting over leading axes).
        snr_db: the signal-to-noise ratio of the result in dB (scalar or one per channel).
    Returns:
        [..., T] the noisy signal. Use :func:`scale_to_snr` to also keep the scaled noise.
    """
    return signal + scale_to_snr(signal, noise, snr_db)


def speed_perturb(wav: torch.Tensor, factor: float) -> torch.Tensor:
    """Play ``wav`` [..., T] ``factor`` times faster (pitch and tempo together).

    Implemented as band-limited resampling (torchaudio) from ``factor * r`` to ``r`` with the
    ratio reduced to small integers (``factor`` is rounded to 1/100), as in Kaldi/SpeechBrain
    speed perturbation. Returns [..., round(T / factor)] (to within one sample).
    """
    if factor <= 0:
        raise ValueError(f"speed_perturb: factor must be > 0, got {factor}")
    orig = int(round(factor * 100))
    new = 100
    common = math.gcd(orig, new)
    orig, new = orig // common, new // common
    if orig == new:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav, orig_freq=orig, new_freq=new)


def colored_noise(num_samples: int, exponent: float = 0.0,
                  generator: torch.Generator | None = None,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Gaussian noise [T] with power spectral density proportional to ``1 / f ** exponent``.

    ``exponent`` 0 is white, 1 pink, 2 brown (red). Shaped in the frequency domain (the DC bin
    is zeroed) and normalised to unit RMS.
    """
    if num_samples <= 0:
        raise ValueError(f"colored_noise: num_samples must be > 0, got {num_samples}")
    white = torch.randn(num_samples, generator=generator, dtype=torch.float64)
    if exponent == 0:
        noise = white
    else:
        spec = torch.fft.rfft(white)
        freqs = torch.arange(spec.shape[-1], dtype=torch.float64)
        weights = torch.zeros_like(freqs)
        weights[1:] = freqs[1:].pow(-exponent / 2.0)
        noise = torch.fft.irfft(spec * weights, n=num_samples)
    return (noise / rms(noise)).to(dtype)


def set_peak_db(wav: torch.Tensor, peak_db: float) -> torch.Tensor:
    """``wav`` [..., T] scaled so that its largest absolute sample is ``peak_db`` dBFS
    (``10 ** (peak_db / 20)``; 0 dBFS is full scale, 1.0). An all-zero input is returned as is.
    """
    peak = wav.abs().amax(dim=-1, keepdim=True)
    target = 10.0 ** (float(peak_db) / 20.0)
    return torch.where(peak > 0, wav * (target / peak.clamp_min(1e-30)), wav)


def add_dc_offset(wav: torch.Tensor, offset: float) -> torch.Tensor:
    """``wav + offset``: a constant added to every sample (a recorder's DC bias)."""
    return wav + float(offset)


def resample_through(wav: torch.Tensor, sample_rate: int, via_rate: int) -> torch.Tensor:
    """``wav`` [..., T] resampled to ``via_rate`` and back to ``sample_rate`` (torchaudio's
    band-limited sinc resampling both ways), cut or padded back to T samples.

    What a file recorded at ``via_rate`` looks like after loading at ``sample_rate``: below
    ``sample_rate`` the content above ``via_rate / 2`` is removed (with the resampler's
    transition band just below it); above, only the resampling filters' small ripple remains.
    """
    import torchaudio.functional as AF

    sample_rate, via_rate = int(sample_rate), int(via_rate)
    if via_rate == sample_rate:
        return wav
    there = AF.resample(wav, sample_rate, via_rate)
    return crop_or_pad(AF.resample(there, via_rate, sample_rate), wav.shape[-1])


def band_limit(wav: torch.Tensor, sample_rate: int, low_hz: float | None = None,
               high_hz: float | None = None, order: int = 4) -> torch.Tensor:
    """Zero-phase band-pass of ``wav`` [..., T]: Butterworth magnitude responses of ``order``
    (``|H| = 1 / sqrt(1 + (f / high_hz) ** (2 order))`` for the low-pass and the mirror image
    ``1 / sqrt(1 + (low_hz / f) ** (2 order))`` for the high-pass; -3 dB at the cut-offs,
    ``6 order`` dB per octave beyond) applied in the frequency domain. None leaves that side
    open. The signal is treated as periodic (an FFT over T samples), as a frame-wise filter
    would be.
    """
    if low_hz is None and high_hz is None:
        return wav
    spec = torch.fft.rfft(wav.double(), dim=-1)
    freqs = torch.fft.rfftfreq(wav.shape[-1], d=1.0 / sample_rate, dtype=torch.float64)
    gain = torch.ones_like(freqs)
    if high_hz is not None:
        gain = gain / torch.sqrt(1.0 + (freqs / float(high_hz)) ** (2 * order))
    if low_hz is not None:
        ratio = float(low_hz) / freqs.clamp_min(1e-9)
        gain = gain / torch.sqrt(1.0 + ratio ** (2 * order))
    return torch.fft.irfft(spec * gain, n=wav.shape[-1], dim=-1).to(wav.dtype)


def synthetic_rir(rt60: float, sample_rate: int, generator: torch.Generator | None = None,
                  direct_to_reverb_db: float = 0.0) -> torch.Tensor:
    """A synthetic room impulse response ``[L]``, ``L = round(rt60 * sample_rate)``: a unit
    direct path at t = 0 plus an exponentially decaying Gaussian noise tail whose energy falls
    by 60 dB over ``rt60`` seconds (amplitude ``exp(-6.91 t / rt60)``, Polack's model) and
    whose total energy is ``direct_to_reverb_db`` dB below the direct path's.
    """
    length = max(2, int(round(float(rt60) * sample_rate)))
    t = torch.arange(length, dtype=torch.float64) / sample_rate
    tail = torch.randn(length, generator=generator, dtype=torch.float64)
    tail = tail * torch.exp(-3.0 * math.log(10.0) * t / float(rt60))
    tail[0] = 0.0
    tail = tail / tail.pow(2).sum().sqrt() * 10.0 ** (-float(direct_to_reverb_db) / 20.0)
    tail[0] = 1.0
    return tail.float()


def reverberate(wav: torch.Tensor, rir: torch.Tensor) -> torch.Tensor:
    """``wav`` [..., T] convolved with the impulse response ``rir`` [L] (FFT convolution),
    cut to T samples: the reverberant tail past the end of the input is dropped."""
    import torchaudio.functional as AF

    wet = AF.fftconvolve(wav.double(), rir.to(torch.float64).expand(*wav.shape[:-1], -1))
    return wet[..., : wav.shape[-1]].to(wav.dtype)
