"""Training augmentation: each degradation changes the input as documented, the WaveAugment
config is checked, and synth_events applies it to training items only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import audionets.data  # noqa: F401  (registers the datasets)
from audionets.data import transforms as T
from audionets.data.augment import WaveAugment, build_augment
from audionets.data.events import SynthEvents
from audionets.errors import ConfigError

SR = 16000


def _sine(freq: float, seconds: float = 1.0, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    return (amplitude * torch.sin(2 * math.pi * freq * t)).float()


def _band_power(wav: torch.Tensor, low: float, high: float) -> float:
    """Power of ``wav`` between ``low`` and ``high`` Hz (numpy periodogram, independent of the
    code under test)."""
    spec = np.abs(np.fft.rfft(wav.double().numpy())) ** 2
    freqs = np.fft.rfftfreq(wav.shape[-1], 1.0 / SR)
    return float(spec[(freqs >= low) & (freqs < high)].sum())


def _db(ratio: float) -> float:
    return 10 * math.log10(ratio)


@pytest.mark.parametrize("peak_db", [-50.0, -20.0, 0.0])
def test_set_peak_db_sets_the_peak(peak_db):
    wav = torch.randn(2, 4000, generator=torch.Generator().manual_seed(0))
    out = T.set_peak_db(wav, peak_db)
    peaks = out.abs().amax(dim=-1)
    assert torch.allclose(20 * torch.log10(peaks), torch.full((2,), peak_db), atol=1e-4)
    assert torch.allclose(out / out.abs().amax(-1, keepdim=True),
                          wav / wav.abs().amax(-1, keepdim=True), atol=1e-6)  # same shape
    assert torch.equal(T.set_peak_db(torch.zeros(5), -3.0), torch.zeros(5))


def test_add_dc_offset_moves_the_mean_only():
    wav = _sine(440.0)
    out = T.add_dc_offset(wav, 0.1)
    assert out.mean().item() == pytest.approx(wav.mean().item() + 0.1, abs=1e-6)
    assert torch.allclose(out - out.mean(), wav - wav.mean(), atol=1e-6)


def test_resample_through_a_lower_rate_removes_what_it_cannot_hold():
    wav = _sine(1000.0) + _sine(6000.0)
    out = T.resample_through(wav, SR, 8000)
    assert out.shape == wav.shape
    kept = _band_power(out, 900, 1100) / _band_power(wav, 900, 1100)
    removed = _band_power(out, 5900, 6100) / _band_power(wav, 5900, 6100)
    assert _db(kept) > -0.5  # the 1 kHz tone passes
    assert _db(removed) < -40  # 6 kHz is above 8000 / 2
    # through a higher rate the signal comes back almost unchanged
    back = T.resample_through(wav, SR, 44100)
    assert float((back - wav)[400:-400].abs().max()) < 0.02


def test_band_limit_matches_its_butterworth_response():
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(SR, generator=g)
    out = T.band_limit(noise, SR, low_hz=300.0, high_hz=3000.0, order=4)
    assert out.shape == noise.shape and out.dtype == noise.dtype
    for freq, expected in ((1000.0, 0.0), (3000.0, -3.0), (6000.0, -24.0), (150.0, -24.0)):
        low_pass = 1 / math.sqrt(1 + (freq / 3000.0) ** 8)
        high_pass = 1 / math.sqrt(1 + (300.0 / freq) ** 8)
        assert 20 * math.log10(low_pass * high_pass) == pytest.approx(expected, abs=0.3)
        tone = _sine(freq)
        ratio = _band_power(T.band_limit(tone, SR, 300.0, 3000.0), freq - 5, freq + 5) / \
            _band_power(tone, freq - 5, freq + 5)
        assert _db(ratio) == pytest.approx(expected, abs=0.5), freq
    assert torch.equal(T.band_limit(noise, SR), noise)


def test_synthetic_rir_decays_60_db_over_rt60():
    rt60 = 0.4
    rir = T.synthetic_rir(rt60, SR, torch.Generator().manual_seed(0), direct_to_reverb_db=5.0)
    assert rir.shape == (int(rt60 * SR),) and rir[0] == 1.0
    tail = rir[1:].double()
    assert _db(1.0 / float(tail.pow(2).sum())) == pytest.approx(5.0, abs=1e-3)
    # Schroeder backward integration of the tail's energy: a straight line of -60 dB per rt60
    energy = torch.flip(torch.cumsum(torch.flip(tail.pow(2), [0]), 0), [0])
    decay = 10 * torch.log10(energy / energy[0])
    t = torch.arange(len(decay), dtype=torch.float64) / SR
    fit = (t[:3200] * t[:3200]).sum().pow(-1) * (t[:3200] * decay[:3200]).sum()  # dB per s
    assert float(-60.0 / fit) == pytest.approx(rt60, rel=0.1)


def test_reverberate_keeps_length_and_adds_a_tail():
    click = torch.zeros(SR)
    click[1000] = 1.0
    rir = T.synthetic_rir(0.3, SR, torch.Generator().manual_seed(2))
    out = T.reverberate(click, rir)
    assert out.shape == click.shape
    assert torch.allclose(out[1000:1000 + len(rir)], rir, atol=1e-6)  # the impulse response
    assert float(out[:1000].abs().max()) < 1e-9  # causal (FFT rounding only)
    # a sustained tone stays a tone: the reverb of a sine is a sine of the same frequency
    tone = T.reverberate(_sine(500.0), rir)
    assert _band_power(tone[SR // 2:], 490, 510) / _band_power(tone[SR // 2:], 0, SR / 2) > 0.99


def test_wave_augment_applies_each_step_as_configured():
    wav = _sine(440.0, amplitude=0.3)
    g = torch.Generator().manual_seed(0)
    levels = [20 * math.log10(float(WaveAugment(SR, peak_db=(-50.0, 0.0))(wav, g).abs().max()))
              for _ in range(200)]
    assert min(levels) >= -50.0 - 1e-3 and max(levels) <= 1e-3
    assert min(levels) < -45 and max(levels) > -5  # the whole range is drawn
    dc = WaveAugment(SR, dc_prob=1.0, dc_max=0.2)
    means = [float(dc(wav, g).mean()) for _ in range(50)]
    assert max(abs(m) for m in means) <= 0.2 * 0.3 + 1e-4 and np.std(means) > 0.01
    band = WaveAugment(SR, band_prob=1.0, band_low_hz=(500.0, 500.0), band_high_hz=(900., 900.))
    low = band(_sine(100.0), g)
    expected = -10 * math.log10(1 + (500.0 / 100.0) ** 8)  # 4th-order high-pass at 500 Hz
    assert _db(_band_power(low, 90, 110) / _band_power(_sine(100.0), 90, 110)) == \
        pytest.approx(expected, abs=0.5)
    resampled = WaveAugment(SR, resample_prob=1.0, resample_rates=(8000,))(_sine(6000.0), g)
    assert float(resampled[400:-400].abs().max()) < 0.01  # all but the edge transients
    reverb = WaveAugment(SR, reverb_prob=1.0, reverb_rt60=(0.3, 0.3),
                         reverb_drr_db=(0.0, 0.0))
    click = torch.zeros(SR)
    click[0] = 1.0
    assert float(reverb(click, g)[1:].pow(2).sum()) == pytest.approx(1.0, rel=1e-3)
    untouched = WaveAugment(SR)(wav, g)  # no step enabled
    assert torch.equal(untouched, wav)


def _peak_hz(wav: torch.Tensor) -> float:
    spec = np.abs(np.fft.rfft(wav.double().numpy()))
    return float(np.fft.rfftfreq(wav.shape[-1], 1.0 / SR)[spec.argmax()])


def test_centre_fit_and_time_shift():
    wav = torch.arange(1.0, 11.0)
    assert torch.equal(T.centre_fit(wav, 6), torch.arange(3.0, 9.0))
    assert torch.equal(T.centre_fit(wav, 13), torch.cat([torch.zeros(1), wav, torch.zeros(2)]))
    assert torch.equal(T.time_shift(wav, 3), torch.cat([torch.zeros(3), wav[:7]]))
    assert torch.equal(T.time_shift(wav, -4), torch.cat([wav[4:], torch.zeros(4)]))
    assert torch.equal(T.time_shift(wav, 0), wav) and not T.time_shift(wav, 12).any()


def test_wave_augment_speed_scales_frequency_and_keeps_length():
    g = torch.Generator().manual_seed(0)
    tone = _sine(1000.0, seconds=0.5)
    fast = WaveAugment(SR, speed_prob=1.0, speed_range=(1.2, 1.2))(tone, g)
    slow = WaveAugment(SR, speed_prob=1.0, speed_range=(0.8, 0.8))(tone, g)
    assert fast.shape == slow.shape == tone.shape
    assert _peak_hz(fast[1000:-1000]) == pytest.approx(1200.0, abs=5)
    assert _peak_hz(slow) == pytest.approx(800.0, abs=5)
    # sped up: 1/1.2 of the length holds the tone, centred; the rest is zero padding
    assert not fast[:600].any() and not fast[-600:].any()
    assert fast[4000:4100].abs().max() > 0.4
    factors = set()
    for _ in range(30):
        out = WaveAugment(SR, speed_prob=1.0, speed_range=(0.9, 1.1))(tone, g)
        factors.add(round(_peak_hz(out[2000:-2000]) / 1000.0, 2))
    assert min(factors) <= 0.93 and max(factors) >= 1.07  # the range is drawn


def test_wave_augment_shift_moves_the_clip_by_at_most_shift_max():
    g = torch.Generator().manual_seed(0)
    click = torch.zeros(SR)
    click[SR // 2] = 1.0
    shifted = [int(WaveAugment(SR, shift_max=0.1)(click, g).argmax()) - SR // 2
               for _ in range(200)]
    assert max(abs(s) for s in shifted) <= 0.1 * SR
    assert min(shifted) < -0.08 * SR and max(shifted) > 0.08 * SR
    word = _sine(300.0) + 0.5  # no zero sample: the zeros are the shift's fill
    for _ in range(5):
        moved = WaveAugment(SR, shift_max=0.05)(word, g)
        lead, trail = int((moved != 0).int().argmax()), int((moved.flip(0) != 0).int().argmax())
        assert min(lead, trail) == 0 and max(lead, trail) <= 0.05 * SR
        assert torch.equal(moved, T.time_shift(word, lead - trail))


def test_build_augment_checks_its_config():
    assert build_augment(None, SR) is None and build_augment({}, SR) is None
    augment = build_augment({"peak_db": [-50, 0], "resample_rates": [8000, 22050],
                             "reverb_prob": 0.5}, SR)
    assert augment.peak_db == (-50.0, 0.0) and augment.resample_rates == (8000, 22050)
    for spec, key in (({"peak": [0, 1]}, "data.augment.peak"),
                      ({"dc_prob": 1.5}, "data.augment.dc_prob"),
                      ({"peak_db": [0, -10]}, "data.augment.peak_db"),
                      ({"reverb_rt60": [0.0, 0.2]}, "data.augment.reverb_rt60"),
                      ({"resample_rates": []}, "data.augment.resample_rates"),
                      ({"band_prob": "often"}, "data.augment.band_prob"),
                      ({"speed_prob": 2}, "data.augment.speed_prob"),
                      ({"speed_range": [0.0, 1.1]}, "data.augment.speed_range"),
                      ({"shift_max": -0.1}, "data.augment.shift_max")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            build_augment(spec, SR)


def test_synth_events_background_prob_and_augment_in_train_only():
    kwargs = dict(segment_seconds=0.5, num_examples=26)
    plain = SynthEvents(split="train", **kwargs)
    again = SynthEvents(split="train", background_prob=1.0, **kwargs)
    assert all(torch.equal(plain[i]["wav"], again[i]["wav"]) for i in range(26))  # unchanged
    clean = SynthEvents(split="train", background_prob=0.0, **kwargs)
    # an event covering 30-90 % of the clip, without background: >= 10 % digital silence
    silent = [float((clean[i]["wav"] == 0).float().mean()) for i in range(26)]
    assert min(silent) >= 0.095
    assert all(float((plain[i]["wav"] == 0).float().mean()) < 0.01 for i in range(26))
    augment = {"peak_db": [-50.0, -40.0]}
    train = SynthEvents(split="train", augment=augment, **kwargs)
    torch.manual_seed(0)
    peaks = [float(train[i]["wav"].abs().max()) for i in range(26)]
    assert all(10 ** (-50 / 20) - 1e-6 <= p <= 10 ** (-40 / 20) + 1e-6 for p in peaks)
    test = SynthEvents(split="test", augment=augment, **kwargs)
    reference = SynthEvents(split="test", **kwargs)
    assert all(torch.equal(test[i]["wav"], reference[i]["wav"]) for i in range(26))
    with pytest.raises(ConfigError, match="data.background_prob"):
        SynthEvents(split="train", background_prob=2.0, **kwargs)


def test_synth_events_fade_prob_gives_abrupt_edges():
    kwargs = dict(segment_seconds=0.5, num_examples=26, background_snr_db=None,
                  event_fraction=(1.0, 1.0))
    faded = SynthEvents(split="train", **kwargs)
    again = SynthEvents(split="train", fade_prob=1.0, **kwargs)
    abrupt = SynthEvents(split="train", fade_prob=0.0, **kwargs)
    tone = faded.labels.index("tone")
    for i in (tone, tone + 13):
        assert torch.equal(faded[i]["wav"], again[i]["wav"])  # fade_prob=1: unchanged items
        # an event filling the clip: faded, it starts at exactly 0; abrupt, at full swing
        assert float(faded[i]["wav"][0]) == 0.0
        edge = float(abrupt[i]["wav"][:8].abs().max())
        assert edge > 0.3 * float(abrupt[i]["wav"].abs().max())
        # only the envelope differs: the same tone in the middle of the clip (its level is set
        # by the RMS of the whole event, which the fades lower: a constant factor)
        a, b = faded[i]["wav"][2000:6000], abrupt[i]["wav"][2000:6000]
        scale = float((a * b).sum() / (b * b).sum())
        assert torch.allclose(a, scale * b, atol=1e-5) and 0.9 < scale < 1.2
    half = SynthEvents(split="train", **{**kwargs, "num_examples": 13 * 20}, fade_prob=0.5)
    starts = [float(half[i]["wav"][0]) != 0.0 for i in range(tone, 13 * 20, 13)]
    assert 4 <= sum(starts) <= 16  # about half of the 20 tones start abruptly


def test_synth_events_fill_prob_makes_events_fill_the_clip():
    kwargs = dict(segment_seconds=0.5, num_examples=13 * 20, background_snr_db=None)
    plain = SynthEvents(split="train", **kwargs)
    again = SynthEvents(split="train", fill_prob=0.0, **kwargs)
    assert all(torch.equal(plain[i]["wav"], again[i]["wav"]) for i in range(0, 13 * 20, 7))
    filled = SynthEvents(split="train", fill_prob=1.0, **kwargs)
    for name in ("tone", "white_noise", "pink_noise", "brown_noise", "square"):
        for i in range(filled.labels.index(name), 13 * 20, 13 * 5):
            wav = filled[i]["wav"]
            # no digital silence anywhere and no fade (a faded event starts and ends at 0)
            assert float((wav == 0).float().mean()) < 0.01
            assert float(wav[0]) != 0.0 and float(wav[-1]) != 0.0
            assert float((plain[i]["wav"] == 0).float().mean()) >= 0.095  # 30-90 % of the clip
    some = SynthEvents(split="train", fill_prob=0.3, **kwargs)
    white = range(some.labels.index("white_noise"), 13 * 20, 13)
    full = sum(float((some[i]["wav"] == 0).float().mean()) == 0.0 for i in white)
    assert 2 <= full <= 12  # about 6 of the 20
    with pytest.raises(ConfigError, match="data.fill_prob"):
        SynthEvents(split="train", fill_prob=1.5, **kwargs)


def _peak_frequencies(wav: torch.Tensor) -> np.ndarray:
    """Frequency of the strongest bin of each 32 ms frame (numpy, independent of the code)."""
    frames = wav.double().numpy()[: len(wav) // 512 * 512].reshape(-1, 512) * np.hanning(512)
    return np.argmax(np.abs(np.fft.rfft(frames, axis=1)), axis=1) * SR / 512


def test_synth_events_variety_prob_squares_in_phase_and_slow_or_linear_sweeps():
    kwargs = dict(segment_seconds=1.0, num_examples=13 * 16, background_snr_db=None,
                  event_fraction=(1.0, 1.0))
    plain = SynthEvents(split="train", **kwargs)
    again = SynthEvents(split="train", variety_prob=0.0, **kwargs)
    assert all(torch.equal(plain[i]["wav"], again[i]["wav"]) for i in range(0, 13 * 16, 5))
    varied = SynthEvents(split="train", variety_prob=1.0, **kwargs)
    labels = varied.labels

    def crest(wav: torch.Tensor) -> float:  # peak over RMS, away from the fades
        middle = wav[1600:-1600].double()
        return float(middle.abs().max() / middle.pow(2).mean().sqrt())

    squares = range(labels.index("square"), 13 * 16, 13)
    # harmonics in phase: a square wave's crest factor is 1 (band-limited: a little more);
    # the plain definition's random phases give about 2
    assert max(crest(varied[i]["wav"]) for i in squares) < 1.3
    assert np.median([crest(plain[i]["wav"]) for i in squares]) > 1.6
    for i in squares:  # still odd harmonics only
        spec = np.abs(np.fft.rfft(varied[i]["wav"].double().numpy()))
        f0 = int(np.argmax(spec))
        assert spec[2 * f0 - 3:2 * f0 + 4].max() < 0.05 * spec[f0]
    # band limits vary: some as sox writes them at 8 / 11.025 kHz, read at 16 kHz (nothing
    # above that rate's Nyquist, but harmonics up to near it), others up to 16 kHz's
    high_band = []
    for i in squares:
        spec = np.abs(np.fft.rfft(varied[i]["wav"].double().numpy())) ** 2  # 1 Hz bins
        assert spec[2500:5500].sum() > 1e-3 * spec.sum()
        high_band.append(spec[5600:].sum() / spec.sum())
    assert min(high_band) < 1e-4 and max(high_band) > 1e-3
    # sweeps keep their direction, and some span less than the plain definition's 1 octave
    spans = []
    for name, sign in (("chirp_up", 1), ("chirp_down", -1)):
        for i in range(labels.index(name), 13 * 16, 13):
            track = _peak_frequencies(varied[i]["wav"])[2:-2]
            ratio = float(np.median(track[-5:]) / np.median(track[:5]))
            assert np.log2(ratio) * sign > 0.1
            spans.append(abs(np.log2(ratio)))
    assert min(spans) < 0.8 and max(spans) > 1.5
    # only the event's own draws change: the level and the other classes stay as they were
    tone = labels.index("tone")
    assert torch.equal(varied[tone]["wav"], plain[tone]["wav"])
    with pytest.raises(ConfigError, match="data.variety_prob"):
        SynthEvents(split="train", variety_prob=-0.1, **kwargs)
