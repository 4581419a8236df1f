import math

import numpy as np
import pytest
import torch

from audionets import frontends
from audionets.errors import ConfigError
from audionets.registry import FRONTENDS


def _chirp(batch: int = 2, length: int = 4000, rate: int = 8000) -> torch.Tensor:
    t = torch.arange(length) / rate
    f = 200 + 1500 * t / t[-1]
    base = torch.sin(2 * math.pi * f * t)
    return torch.stack([base * (0.5 + 0.2 * b) + 0.05 * torch.randn(length) for b in range(batch)])


FRONTEND_CONFIGS = [
    ("waveform", {}),
    ("stft", {"n_fft": 64, "hop_length": 16}),
    ("stft", {"n_fft": 64, "hop_length": 16, "mode": "complex"}),
    ("stft", {"n_fft": 64, "hop_length": 16, "mode": "log_magnitude", "win_length": 48}),
    ("logmel", {"sample_rate": 8000, "n_fft": 256, "hop_length": 80, "n_mels": 40}),
    ("filterbank", {"kind": "free", "n_filters": 32, "kernel_size": 16, "stride": 8}),
    ("filterbank", {"kind": "param_sinc", "n_filters": 32, "kernel_size": 16, "stride": 8}),
    ("filterbank", {"kind": "analytic_free", "n_filters": 32, "kernel_size": 16, "stride": 8}),
    ("filterbank", {"kind": "stft", "n_filters": 32, "kernel_size": 16, "stride": 8}),
]


@pytest.mark.parametrize("name,kwargs", FRONTEND_CONFIGS)
@pytest.mark.parametrize("length", [1000, 777])
def test_shapes_and_out_channels(name, kwargs, length):
    frontend = FRONTENDS.build(name, **kwargs)
    assert isinstance(frontend, frontends.Frontend)
    features = frontend(torch.randn(3, length))
    assert features.dim() == 3 and features.shape[0] == 3
    assert features.shape[1] == frontend.out_channels
    assert torch.isfinite(features).all()
    if name == "stft":  # last frame centred at or after the last sample
        assert features.shape[2] == math.ceil((length - 1) / kwargs["hop_length"]) + 1
    if name == "logmel":  # torchaudio's frames
        assert features.shape[2] == length // kwargs["hop_length"] + 1


@pytest.mark.parametrize("name,kwargs", FRONTEND_CONFIGS)
def test_gradients_reach_input_and_parameters(name, kwargs):
    frontend = FRONTENDS.build(name, **kwargs)
    wav = torch.randn(2, 800, requires_grad=True)
    features = frontend(wav)
    loss = features.square().mean()
    if name == "filterbank":  # the decoder's own filters learn through inverse
        loss = loss + frontend.inverse(features, length=800).square().mean()
    loss.backward()
    assert wav.grad is not None and wav.grad.abs().sum() > 0
    for pname, param in frontend.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, pname


def test_learnable_filterbanks_have_parameters_and_stft_has_none():
    for kind in ("free", "param_sinc", "analytic_free"):
        assert sum(p.numel() for p in frontends.Filterbank(kind=kind).parameters()) > 0
    assert list(frontends.Filterbank(kind="stft", n_filters=16).parameters()) == []


def test_waveform_round_trip():
    wav = torch.randn(2, 100)
    frontend = frontends.Waveform()
    assert torch.equal(frontend.inverse(frontend(wav)), wav)
    assert frontend.inverse(frontend(wav), length=60).shape == (2, 60)


@pytest.mark.parametrize("length", [1, 5, 31, 64, 100, 127, 1001, 4000])
@pytest.mark.parametrize("window,n_fft,hop", [("hann", 64, 16), ("hamming", 64, 16),
                                               ("hann", 256, 128), ("blackman", 256, 64)])
def test_stft_complex_round_trip_any_length(length, window, n_fft, hop):
    wav = torch.randn(2, length)
    stft = frontends.STFT(n_fft=n_fft, hop_length=hop, window=window, mode="complex")
    back = stft.inverse(stft(wav), length=length)
    assert back.shape == wav.shape
    torch.testing.assert_close(back, wav, atol=1e-5, rtol=0)


def test_stft_values_match_torch_stft():
    wav = _chirp(length=4010)
    kwargs = dict(n_fft=128, hop_length=32, win_length=96)
    window = torch.hann_window(96)
    ref = torch.stft(wav, 128, 32, 96, window, center=True, pad_mode="constant",
                     return_complex=True)
    mag = frontends.STFT(**kwargs)(wav)
    assert mag.shape[-1] == ref.shape[-1] + 1  # 4010 % 32 == 26: one frame more than torch
    mag = mag[..., :-1]
    torch.testing.assert_close(mag, ref.abs())
    log_mag = frontends.STFT(**kwargs, mode="log_magnitude", log_offset=1e-3)(wav)
    torch.testing.assert_close(log_mag[..., :-1], torch.log(ref.abs() + 1e-3))
    cplx = frontends.STFT(**kwargs, mode="complex")(wav)[..., :-1]
    torch.testing.assert_close(cplx, torch.cat([ref.real, ref.imag], dim=1))
    # and against NumPy's FFT of one centred frame
    frame = torch.nn.functional.pad(wav[0], (64, 64))[5 * 32 : 5 * 32 + 128].double().numpy()
    win = np.zeros(128)
    win[16:112] = window.double().numpy()
    np.testing.assert_allclose(mag[0, :, 5].double().numpy(), np.abs(np.fft.rfft(frame * win)),
                               atol=1e-4)


def test_stft_magnitude_inverse_needs_phase():
    wav = _chirp(length=1200)
    for mode in ("magnitude", "log_magnitude"):
        stft = frontends.STFT(n_fft=64, hop_length=16, mode=mode)
        with pytest.raises(ValueError, match="phase"):
            stft.inverse(stft(wav))
        phase = torch.angle(stft.spectrogram(wav))
        back = stft.inverse(stft(wav), length=1200, phase=phase)
        torch.testing.assert_close(back, wav, atol=1e-4, rtol=0)


def test_logmel_filterbank_matches_librosa():
    import librosa

    for norm, scale in [("slaney", "slaney"), (None, "htk"), ("slaney", "htk")]:
        logmel = frontends.LogMel(sample_rate=16000, n_fft=512, n_mels=40, f_min=50.0,
                                  f_max=7000.0, norm=norm, mel_scale=scale)
        ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=50.0, fmax=7000.0,
                                  htk=scale == "htk", norm=norm)
        np.testing.assert_allclose(logmel.mel_filters.double().numpy(), ref,
                                   atol=1e-5 * np.abs(ref).max(), rtol=0)


def test_logmel_values_match_librosa():
    import librosa

    wav = _chirp(batch=1, length=8000, rate=16000)
    logmel = frontends.LogMel(sample_rate=16000, n_fft=400, hop_length=160, n_mels=32)
    ours = logmel(wav)[0].double().numpy()
    power = librosa.feature.melspectrogram(
        y=wav[0].double().numpy(), sr=16000, n_fft=400, hop_length=160, n_mels=32,
        power=2.0, center=True, pad_mode="constant", htk=False, norm="slaney",
    )
    ref = np.log(power + 1e-6)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-3)


def test_logmel_is_not_invertible():
    with pytest.raises(NotImplementedError, match="not invertible"):
        frontends.LogMel().inverse(torch.zeros(1, 64, 10))


@pytest.mark.parametrize("n_filters,kernel_size,stride", [(32, 16, 8), (64, 32, 8), (64, 64, 16)])
@pytest.mark.parametrize("length", [100, 1001])
def test_filterbank_stft_kind_reconstructs(n_filters, kernel_size, stride, length):
    fb = frontends.Filterbank(kind="stft", n_filters=n_filters, kernel_size=kernel_size,
                              stride=stride)
    wav = torch.randn(2, length)
    features = fb(wav)
    assert features.shape[1] == n_filters + 2  # real and imaginary halves of n/2 + 1 bins
    back = fb.inverse(features, length=length)
    torch.testing.assert_close(back, wav, atol=1e-5, rtol=0)
    assert fb.inverse(features).shape[-1] >= length


def test_filterbank_stft_kind_matches_asteroid_encoder():
    from asteroid_filterbanks import make_enc_dec

    fb = frontends.Filterbank(kind="stft", n_filters=32, kernel_size=16, stride=8)
    enc, _ = make_enc_dec("stft", n_filters=32, kernel_size=16, stride=8)
    wav = torch.randn(1, 808)
    padded = torch.nn.functional.pad(wav, (8, 8))  # kernel - stride on each side, whole hops
    torch.testing.assert_close(fb(wav), enc(padded.unsqueeze(1)))


def test_filterbank_inverse_pads_short_decoder_output():
    fb = frontends.Filterbank(kind="free", n_filters=16, kernel_size=16, stride=8)
    features = fb(torch.randn(1, 100))
    assert fb.inverse(features, length=100).shape == (1, 100)
    assert fb.inverse(features[..., :5], length=100).shape == (1, 100)


def test_param_sinc_kernel_made_odd_and_options_passed():
    fb = frontends.Filterbank(kind="param_sinc", n_filters=16, kernel_size=16, stride=8,
                              min_low_hz=80.0)
    assert fb.kernel_size == 17
    assert fb.encoder.filterbank.kernel_size == 17
    assert fb.encoder.filterbank.min_low_hz == 80.0


@pytest.mark.parametrize("name,kwargs,key", [
    ("stft", {"mode": "phase"}, "frontend.mode"),
    ("stft", {"window": "kaiser"}, "frontend.window"),
    ("stft", {"n_fft": 64, "hop_length": 128}, "frontend.hop_length"),
    ("stft", {"n_fft": 64, "win_length": 128}, "frontend.win_length"),
    ("logmel", {"sample_rate": 8000, "f_max": 6000}, "f_max"),
    ("logmel", {"mel_scale": "bark"}, "frontend.mel_scale"),
    ("filterbank", {"kind": "gammatone"}, "frontend.kind"),
    ("filterbank", {"kind": "stft", "n_filters": 15}, "frontend.n_filters"),
    ("filterbank", {"stride": 32, "kernel_size": 16}, "frontend.stride"),
    ("filterbank", {"n_filters": 0}, "frontend.n_filters"),
    ("filterbank", {"n_filter": 32}, "frontend.n_filter"),  # typo: rejected, not ignored
])
def test_bad_config_raises_config_error(name, kwargs, key):
    with pytest.raises(ConfigError, match=key):
        FRONTENDS.build(name, **kwargs)


def test_bad_input_shape():
    with pytest.raises(ValueError, match=r"\[batch, time\]"):
        frontends.STFT()(torch.zeros(1, 1, 100))


def test_window_is_a_buffer_and_moves_with_module():
    stft = frontends.STFT(n_fft=64, hop_length=16).double()
    assert "window" in dict(stft.named_buffers())
    assert stft.window.dtype == torch.float64
    assert stft(torch.randn(1, 200, dtype=torch.float64)).dtype == torch.float64


def test_stft_that_cannot_be_inverted_says_so():
    # a periodic hann window is 0 at its first sample: without overlap nothing covers it
    stft = frontends.STFT(n_fft=16, hop_length=16, mode="complex")
    assert not stft.invertible
    features = stft(torch.randn(1, 100))  # the forward transform is fine
    with pytest.raises(ValueError, match="cannot be inverted.*NOLA"):
        stft.inverse(features, length=100)
    assert frontends.STFT(n_fft=16, hop_length=16, window="hamming").invertible


def test_logmel_stays_float32_under_float16_autocast():
    # a full-scale tone's mel power exceeds float16's range (65504): must not become inf
    logmel = frontends.LogMel(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=32)
    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * math.pi * 1000 * t)[None]
    reference = logmel(tone)
    with torch.autocast("cpu", dtype=torch.float16):
        mixed = logmel(tone)
    assert mixed.dtype == torch.float32 and torch.isfinite(mixed).all()
    torch.testing.assert_close(mixed, reference)
