"""Spectrogram pictures for the page: one small PNG per signal, on one colour scale."""

from __future__ import annotations

from pathlib import Path

import torch

#: Columns of a spectrogram picture: a long file is drawn with a larger hop, not a wider image.
MAX_FRAMES = 1200


def save_spectrograms(signals: dict[Path, torch.Tensor], sample_rate: int) -> None:
    """Draw ``20 log10 |STFT|`` of each ``wav [T]`` to its PNG path (800 x 180 pixels).

    All pictures share one scale (80 dB below the loudest bin of any of them), so a source is
    visibly quieter than the mixture where it is.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from audionets.plots import log_spectrogram
    from audionets.utils import atomic_write

    spectra = {path: log_spectrogram(wav, sample_rate, MAX_FRAMES) for path, wav in signals.items()}
    top = max(float(spec.max()) for spec in spectra.values())
    for (path, spec), wav in zip(spectra.items(), signals.values()):
        fig, ax = plt.subplots(figsize=(8, 1.8), dpi=100, constrained_layout=True)
        ax.imshow(spec.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=top - 80,
                  vmax=top, extent=(0, wav.shape[-1] / sample_rate, 0, sample_rate / 2000),
                  interpolation="nearest")
        ax.set_xlabel("time (s)", fontsize=8)
        ax.set_ylabel("kHz", fontsize=8)
        ax.tick_params(labelsize=7)
        with atomic_write(path) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
