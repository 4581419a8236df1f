"""plots.log_spectrogram against librosa's STFT; its frame count bound."""

import librosa
import numpy as np
import pytest
import torch

from audionets.plots import log_spectrogram


@pytest.mark.parametrize("rate, n_fft", [(8000, 256), (16000, 512), (44100, 1024), (1000, 64)])
def test_log_spectrogram_is_librosa_stft_in_db(rate, n_fft):
    wav = torch.from_numpy(np.random.default_rng(0).standard_normal(rate // 2).astype(np.float32))
    ours = log_spectrogram(wav, rate)
    ref = librosa.stft(wav.numpy(), n_fft=n_fft, hop_length=n_fft // 4, window="hann",
                       center=True, pad_mode="reflect")
    expected = 20 * np.log10(np.abs(ref) + 1e-6)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-3)


def test_max_frames_bounds_the_columns_of_long_inputs():
    wav = torch.randn(8000 * 60)  # a minute at 8 kHz: 7501 frames at the quarter-window hop
    assert log_spectrogram(wav, 8000).shape == (129, 7501)
    bounded = log_spectrogram(wav, 8000, max_frames=1000)
    assert bounded.shape[0] == 129 and 900 <= bounded.shape[1] <= 1001
    short = torch.randn(800)  # already under the bound: the hop stays a quarter window
    torch.testing.assert_close(log_spectrogram(short, 8000, max_frames=1000),
                               log_spectrogram(short, 8000))
