"""Spectrogram pictures for the page: one small PNG per audio file, on one colour scale.

Memory stays bounded by the longest file accepted: a file is read in blocks into one mono
signal, its spectrogram (at most :data:`MAX_FRAMES` columns) kept, the signal dropped before
the next file is read.
"""

from __future__ import annotations

from pathlib import Path

import torch

from audionets import audio

#: Columns of a spectrogram picture: a long file is drawn with a larger hop, not a wider image.
MAX_FRAMES = 1200
_BLOCK = 1 << 16  # frames read at a time


def read_mono(path: Path) -> tuple[torch.Tensor, int]:
    """``(wav [T], rate)``: the channel average of an audio file, read block by block (a
    6-channel file never has all its channels in memory at once)."""
    meta = audio.info(path)
    wav = torch.empty(meta.num_frames)
    start = 0
    for block in audio.stream(path, block_frames=_BLOCK, mono=True):
        wav[start:start + block.shape[-1]] = block[0]
        start += block.shape[-1]
    return wav, meta.sample_rate


def save_spectrograms(pictures: dict[Path, Path]) -> None:
    """Draw ``20 log10 |STFT|`` of each audio file (values) to its PNG path (keys), 800 x 180
    pixels, time in seconds and frequency in kHz.

    All pictures share one scale (80 dB below the loudest bin of any of them), so a source is
    visibly quieter than the mixture where it is.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from audionets.plots import log_spectrogram
    from audionets.utils import atomic_write

    spectra = {}
    for png, source in pictures.items():
        wav, rate = read_mono(source)
        spectra[png] = (log_spectrogram(wav, rate, MAX_FRAMES), wav.shape[-1] / rate, rate)
        del wav
    top = max(float(spec.max()) for spec, _, _ in spectra.values())
    for png, (spec, seconds, rate) in spectra.items():
        fig, ax = plt.subplots(figsize=(8, 1.8), dpi=100, constrained_layout=True)
        ax.imshow(spec.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=top - 80,
                  vmax=top, extent=(0, seconds, 0, rate / 2000), interpolation="nearest")
        ax.set_xlabel("time (s)", fontsize=8)
        ax.set_ylabel("kHz", fontsize=8)
        ax.tick_params(labelsize=7)
        with atomic_write(png) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
