"""Log-magnitude spectrograms for the figures of ``audionets demo`` and ``audionets serve``."""

from __future__ import annotations

import math

import torch


def log_spectrogram(wav: torch.Tensor, sample_rate: int,
                    max_frames: int | None = None) -> torch.Tensor:
    """``20 log10 |STFT|`` of ``wav [T]``: ``[F, N]`` (F frequency bins from 0 to the Nyquist
    rate, N frames), with windows of about 32 ms (a power of two, at least 64 samples).

    The hop is a quarter window; with ``max_frames`` it grows so that N stays at most about
    ``max_frames`` (a picture of an hour-long file needs no more columns than a short one, and
    its memory stays bounded).
    """
    n_fft = max(64, 2 ** round(math.log2(sample_rate * 0.032)))
    hop = n_fft // 4
    if max_frames is not None:
        hop = max(hop, math.ceil(wav.shape[-1] / max_frames))
    spec = torch.stft(wav.float(), n_fft, hop_length=hop, window=torch.hann_window(n_fft),
                      return_complex=True).abs()
    return 20 * torch.log10(spec + 1e-6)
