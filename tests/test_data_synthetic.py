"""Synthetic datasets (speech, mixtures, events) and the shared waveform transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audionets.data  # noqa: F401  (registers the datasets)
from audionets.data import transforms as T
from audionets.data.mixtures import SynthMix, active_rms
from audionets.data.speech import Speaker, SynthSpeech, speaker_pool, synthesize_utterance
from audionets.errors import ConfigError
from audionets.registry import DATASETS


def _f0_estimate(wav: np.ndarray, sr: int) -> float:
    """Median autocorrelation F0 over loud 40 ms frames (an independent, simple pitch tracker)."""
    frame = int(0.04 * sr)
    frames = wav[: len(wav) // frame * frame].reshape(-1, frame)
    energy = (frames**2).mean(1)
    estimates = []
    lo, hi = int(sr / 400), int(sr / 60)
    for f in frames[energy > 0.3 * energy.max()]:
        f = f - f.mean()
        ac = np.correlate(f, f, "full")[frame - 1:]
        lag = lo + int(np.argmax(ac[lo:hi]))
        estimates.append(sr / lag)
    return float(np.median(estimates))


# ---------------------------------------------------------------------------- speech


def test_speaker_is_deterministic_and_pools_are_disjoint():
    assert Speaker.from_seed(7, seed=3) == Speaker.from_seed(7, seed=3)
    assert Speaker.from_seed(7, seed=3) != Speaker.from_seed(7, seed=4)
    ids = {s: {spk.speaker_id for spk in speaker_pool(s, seed=0)}
           for s in ("train", "valid", "test")}
    assert ids["train"].isdisjoint(ids["valid"]) and ids["train"].isdisjoint(ids["test"])
    assert ids["valid"].isdisjoint(ids["test"])
    f0s = [spk.f0_mean for spk in speaker_pool("train", seed=0)]
    assert min(f0s) < 110 and max(f0s) > 200  # low and high voices both occur


def test_utterance_shape_level_and_determinism():
    spk = Speaker.from_seed(1)
    a = synthesize_utterance(spk, 1.5, 8000, np.random.default_rng(5))
    b = synthesize_utterance(spk, 1.5, 8000, np.random.default_rng(5))
    c = synthesize_utterance(spk, 1.5, 8000, np.random.default_rng(6))
    assert a.shape == (12000,) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.sqrt(np.mean(a**2)) == pytest.approx(0.05, rel=1e-3)
    frames = (a[: 12000 // 160 * 160].reshape(-1, 160) ** 2).mean(1)
    assert (frames < 1e-6 * frames.max()).any(), "expected pauses between words"


def test_formant_resonators_match_scipy_freqz():
    from scipy.signal import freqz

    from audionets.data.speech import _resonator_gain

    sr, freqs = 8000, np.linspace(0, 4000, 129)
    centers = np.array([[500.0, 1500.0, 2500.0], [300.0, 2200.0, 3000.0]])
    bandwidths = np.array([70.0, 100.0, 140.0])
    ours = _resonator_gain(freqs, centers, bandwidths, sr)
    for n in range(2):
        expected = np.ones_like(freqs)
        for fc, bw in zip(centers[n], bandwidths):
            r, theta = np.exp(-np.pi * bw / sr), 2 * np.pi * fc / sr
            den = [1.0, -2 * r * np.cos(theta), r * r]
            expected *= np.abs(freqz([sum(den)], den, worN=freqs, fs=sr)[1])
        np.testing.assert_allclose(ours[n], expected, rtol=1e-9)


def test_speakers_sound_different_in_pitch():
    low = Speaker.from_seed(0).__class__(**{**Speaker.from_seed(0).__dict__, "f0_mean": 100.0,
                                           "vibrato_depth": 0.0, "f0_range": 0.5})
    high = low.__class__(**{**low.__dict__, "f0_mean": 220.0})
    rng = np.random.default_rng(0)
    f_low = _f0_estimate(synthesize_utterance(low, 2.0, 16000, rng), 16000)
    f_high = _f0_estimate(synthesize_utterance(high, 2.0, 16000, rng), 16000)
    assert 80 < f_low < 125 and 175 < f_high < 270


def test_pool_speakers_differ_in_measured_pitch():
    speakers = speaker_pool("train", seed=0)[:8]
    rng = np.random.default_rng(1)
    wavs = [synthesize_utterance(s, 1.0, 16000, rng) for s in speakers]
    measured = [_f0_estimate(w, 16000) for w in wavs]
    assert np.corrcoef(np.log(measured), np.log([s.f0_mean for s in speakers]))[0, 1] > 0.9
    assert max(measured) / min(measured) > 1.5


def test_synth_speech_items():
    ds = DATASETS.build("synth_speech", split="valid", sample_rate=8000, segment_seconds=0.5,
                        num_examples=3)
    item = ds[2]
    assert item["wav"].shape == (4000,) and item["wav"].dtype == torch.float32
    assert item["id"].startswith("synth_speech-valid-000002")
    torch.testing.assert_close(item["wav"], SynthSpeech("valid", 8000, 0.5, 3)[2]["wav"])
    var = SynthSpeech("test", 8000, None, 4, duration_range=(0.3, 0.6))
    assert all(2400 <= len(var[i]["wav"]) <= 4800 for i in range(4))


# ---------------------------------------------------------------------------- mixtures


@pytest.mark.parametrize("num_speakers,sample_rate", [(2, 8000), (3, 16000)])
def test_synth_mix_shapes_sum_and_gains(num_speakers, sample_rate):
    ds = DATASETS.build("synth_mix", split="train", num_speakers=num_speakers,
                        sample_rate=sample_rate, segment_seconds=0.5, num_examples=4)
    for i in range(2):
        item = ds[i]
        mix, sources = item["mix"], item["sources"]
        length = sample_rate // 2
        assert mix.shape == (length,) and sources.shape == (num_speakers, length)
        assert mix.dtype == sources.dtype == torch.float32
        torch.testing.assert_close(mix, sources.sum(0), rtol=0, atol=1e-6)
        peak = max(mix.abs().max(), sources.abs().max())
        assert float(peak) == pytest.approx(0.9, abs=1e-5)  # wsj0-2mix scaling
        levels = [active_rms(s.double().numpy(), sample_rate) for s in sources]
        diffs = [abs(20 * np.log10(lv / levels[0])) for lv in levels[1:]]
        assert all(0 <= d <= 5.0 + 1e-6 for d in diffs), diffs


def test_synth_mix_is_deterministic_and_dynamic_only_when_asked():
    a = SynthMix("valid", segment_seconds=0.25, num_examples=3, seed=1)
    b = SynthMix("valid", segment_seconds=0.25, num_examples=3, seed=1)
    torch.testing.assert_close(a[1]["sources"], b[1]["sources"], rtol=0, atol=0)
    assert a[1]["id"] == b[1]["id"]
    assert not torch.equal(a[0]["mix"], a[1]["mix"])
    assert not torch.equal(a[1]["mix"], SynthMix("valid", segment_seconds=0.25, seed=2)[1]["mix"])
    fixed = SynthMix("train", segment_seconds=0.25, num_examples=2)
    dyn = SynthMix("train", segment_seconds=0.25, num_examples=2, dynamic=True)
    first = dyn[0]["mix"]
    torch.testing.assert_close(first, fixed[0]["mix"], rtol=0, atol=0)  # epoch 0 == fixed
    dyn.set_epoch(1)
    fixed.set_epoch(1)
    assert not torch.equal(dyn[0]["mix"], first)
    torch.testing.assert_close(fixed[0]["mix"], first, rtol=0, atol=0)
    valid = SynthMix("valid", segment_seconds=0.25, num_examples=2, dynamic=True)
    before = valid[0]["mix"]
    valid.set_epoch(3)
    torch.testing.assert_close(valid[0]["mix"], before, rtol=0, atol=0)


def test_synth_mix_speakers_are_disjoint_across_splits():
    used = {}
    for split in ("train", "valid", "test"):
        ds = SynthMix(split, segment_seconds=0.1, num_examples=12)
        used[split] = {tok for i in range(len(ds)) for tok in ds[i]["id"].split("-")[-1].split("_")}
    assert used["train"].isdisjoint(used["valid"]) and used["train"].isdisjoint(used["test"])
    assert used["valid"].isdisjoint(used["test"])
    assert len(used["train"]) > 8


@pytest.mark.parametrize("noise_type", ["white", "brown", "babble"])
def test_synth_mix_noise_at_snr(noise_type):
    ds = SynthMix("test", segment_seconds=0.5, num_examples=3, noise_snr_db=[5, 10],
                  noise_type=noise_type)
    for i in range(3):
        item = ds[i]
        speech = item["sources"].sum(0)
        torch.testing.assert_close(item["mix"], speech + item["noise"], rtol=0, atol=1e-6)
        snr = 10 * torch.log10(speech.pow(2).mean() / item["noise"].pow(2).mean())
        assert 5 - 1e-3 <= float(snr) <= 10 + 1e-3


def test_synth_mix_variable_length_and_bad_config():
    ds = SynthMix("test", segment_seconds=None, num_examples=3, duration_range=(0.2, 0.4))
    lengths = {ds[i]["mix"].shape[0] for i in range(3)}
    assert all(1600 <= n <= 3200 for n in lengths) and len(lengths) > 1
    with pytest.raises(ConfigError, match="data.noise_type"):
        SynthMix("test", noise_type="pinkish")
    with pytest.raises(ConfigError, match="data.split"):
        SynthMix("dev")
    with pytest.raises(ConfigError, match="data.gain_db_range"):
        SynthMix("test", gain_db_range=[5, 0])
    with pytest.raises(IndexError):
        SynthMix("test", num_examples=2)[2]


# ---------------------------------------------------------------------------- transforms


def test_crop_or_pad():
    wav = torch.arange(20.0).reshape(2, 10)
    torch.testing.assert_close(T.crop_or_pad(wav, 4), wav[:, :4])
    padded = T.crop_or_pad(wav, 13)
    torch.testing.assert_close(padded[:, :10], wav)
    assert padded.shape == (2, 13) and padded[:, 10:].abs().sum() == 0
    g = torch.Generator().manual_seed(0)
    offsets = set()
    for _ in range(30):
        out = T.crop_or_pad(wav, 4, random=True, generator=g)
        start = int(out[0, 0])
        torch.testing.assert_close(out, wav[:, start:start + 4])  # channels stay aligned
        offsets.add(start)
    assert offsets == set(range(7))
    a = T.crop_or_pad(wav, 4, random=True, generator=torch.Generator().manual_seed(5))
    b = T.crop_or_pad(wav, 4, random=True, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)


def test_gain_and_snr():
    x = torch.randn(2, 1000, dtype=torch.float64)
    np.testing.assert_allclose(T.apply_gain_db(x, -6.0).numpy(), x.numpy() * 10 ** (-6 / 20))
    per_channel = T.apply_gain_db(x, torch.tensor([0.0, 20.0], dtype=torch.float64))
    np.testing.assert_allclose(per_channel[1].numpy(), 10 * x[1].numpy())
    noise = torch.randn(2, 1000, dtype=torch.float64)
    noisy = T.mix_at_snr(x, noise, torch.tensor([3.0, -7.0], dtype=torch.float64))
    measured = 10 * np.log10((x.numpy() ** 2).mean(1) / ((noisy - x).numpy() ** 2).mean(1))
    np.testing.assert_allclose(measured, [3.0, -7.0], atol=1e-9)
    with pytest.raises(ValueError):
        T.mix_at_snr(x, noise[:, :10], 0.0)


def test_speed_perturb_scales_frequency_and_length():
    sr = 8000
    t = torch.arange(sr, dtype=torch.float32) / sr
    tone = torch.sin(2 * torch.pi * 440 * t)
    fast = T.speed_perturb(tone, 1.1)
    assert abs(fast.shape[-1] - round(sr / 1.1)) <= 1
    spec = np.abs(np.fft.rfft(fast.numpy() * np.hanning(fast.shape[-1])))
    peak_hz = np.argmax(spec) * sr / fast.shape[-1]
    assert abs(peak_hz - 484.0) < 3.0
    assert T.speed_perturb(tone, 1.0) is tone


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0])
def test_colored_noise_slope(exponent):
    from scipy.signal import welch

    noise = T.colored_noise(2**16, exponent, torch.Generator().manual_seed(0), torch.float64)
    assert float(T.rms(noise)) == pytest.approx(1.0)
    f, psd = welch(noise.numpy(), nperseg=1024)
    band = (f > 0.01) & (f < 0.4)
    slope = np.polyfit(np.log(f[band]), np.log(psd[band]), 1)[0]
    assert slope == pytest.approx(-exponent, abs=0.15)


# ---------------------------------------------------------------------------- events


def test_synth_events_items_labels_and_determinism():
    from audionets.data.events import EVENT_CLASSES

    ds = DATASETS.build("synth_events", split="test", sample_rate=8000, segment_seconds=0.25,
                        num_examples=26)
    assert ds.labels == list(EVENT_CLASSES) and len(ds.labels) >= 10
    items = [ds[i] for i in range(len(ds))]
    assert {int(it["label"]) for it in items} == set(range(len(ds.labels)))
    for it in items:
        assert it["wav"].shape == (2000,) and it["wav"].dtype == torch.float32
        assert it["label"].dtype == torch.int64 and it["label"].ndim == 0
        assert torch.isfinite(it["wav"]).all() and float(it["wav"].abs().max()) <= 0.99 + 1e-6
        assert it["id"].endswith(ds.labels[int(it["label"])])
    again = DATASETS.build("synth_events", split="test", sample_rate=8000, segment_seconds=0.25,
                           num_examples=26)
    torch.testing.assert_close(again[5]["wav"], items[5]["wav"], rtol=0, atol=0)
    other = DATASETS.build("synth_events", split="valid", sample_rate=8000, segment_seconds=0.25)
    assert not torch.equal(other[5]["wav"], items[5]["wav"])


def _peak_track(wav: np.ndarray, sr: int) -> np.ndarray:
    """Frequency of the strongest STFT bin in each loud frame (an independent check)."""
    from scipy.signal import stft

    f, _, z = stft(wav, sr, nperseg=512)
    power = np.abs(z) ** 2
    loud = power.sum(0) > 0.1 * power.sum(0).max()
    return f[np.argmax(power, axis=0)][loud]


def test_synth_event_classes_have_their_defining_structure():
    ds = DATASETS.build("synth_events", split="train", segment_seconds=1.0, num_examples=13 * 3,
                        background_snr_db=None, event_fraction=[0.8, 0.9])
    names = ds.labels
    for i in range(len(ds)):
        item = ds[i]
        name, wav = names[int(item["label"])], item["wav"].double().numpy()
        track = _peak_track(wav, 16000)
        half = len(track) // 2
        if name == "chirp_up":
            assert np.median(track[half:]) > 1.4 * np.median(track[:half])
        elif name == "chirp_down":
            assert np.median(track[:half]) > 1.4 * np.median(track[half:])
        elif name == "tone":
            assert np.ptp(track[2:-2]) <= 2 * 16000 / 512
        elif name == "fm_tone":
            assert np.ptp(track) > 2 * 16000 / 512
        elif name == "square":
            spec = np.abs(np.fft.rfft(wav))
            f0_bin = np.argmax(spec)
            # odd harmonics only: nothing at 2 f0, a strong 3 f0
            assert spec[2 * f0_bin - 3:2 * f0_bin + 4].max() < 0.05 * spec[f0_bin]
            assert spec[3 * f0_bin - 3:3 * f0_bin + 4].max() > 0.2 * spec[f0_bin]
