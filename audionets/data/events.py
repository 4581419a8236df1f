"""Synthetic sound events in background noise: the ``synth_events`` classification dataset.

Thirteen classes of short events (:data:`EVENT_CLASSES`). Pitch, duration, onset, level and
the background (coloured noise of a random spectral slope at a random SNR) vary within every
class, and all tonal classes share one frequency range, so that no single cue such as pitch or
loudness gives the class away: a model has to learn spectral shape and temporal structure
(sweep direction, modulation, harmonicity, odd-only harmonics, decay, click periodicity,
noise colour, formants and syllables for speech).

Item ``i`` is fully determined by ``(seed, split, i)``; its label is ``i % num_classes`` so
that every split is balanced and holds every class. Speech events use the split's own talker
pool (:func:`~audionets.data.speech.speaker_pool`), disjoint across splits. Only the training
split's ``augment`` (:mod:`audionets.data.augment`) draws from the global RNG, so that each
epoch degrades the same clips differently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from audionets.data.augment import build_augment
from audionets.data.speech import (
    check_segment_seconds, example_count, speaker_pool, split_code, synthesize_utterance,
)
from audionets.data.transforms import colored_noise
from audionets.errors import ConfigError
from audionets.registry import DATASETS

#: Class names, in label order.
EVENT_CLASSES = (
    "tone", "chirp_up", "chirp_down", "harmonic", "am_tone", "fm_tone", "click_train",
    "white_noise", "pink_noise", "brown_noise", "speech", "impact", "square",
)
_DEFAULT_EXAMPLES = {"train": 5200, "valid": 520, "test": 1300}


def _carrier(rng: np.random.Generator, sr: int, low: float = 150.0, high: float = 3000.0) -> float:
    """A log-uniform frequency in [low, min(high, 0.35 sr)] Hz, shared by the tonal classes."""
    high = min(high, 0.35 * sr)
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _harmonics(f0: np.ndarray | float, t: np.ndarray, sr: int, ks: np.ndarray,
               amps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sum of ``amps[j] * sin(ks[j] * phase)`` keeping harmonics below 0.45 sr."""
    keep = ks * np.max(f0) < 0.45 * sr
    phase = 2 * np.pi * f0 * t
    out = np.zeros_like(t)
    for k, a in zip(ks[keep], amps[keep]):
        out += a * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return out


def _tone(t, sr, rng):
    return np.sin(2 * np.pi * _carrier(rng, sr) * t + rng.uniform(0, 2 * np.pi))


def _chirp(t, sr, rng, up: bool):
    octaves = rng.uniform(1.0, 3.0)
    high = min(3000.0, 0.35 * sr)
    f1 = _carrier(rng, sr, 150.0, high / 2**octaves)
    ratio = 2**octaves if up else 2**-octaves
    start = f1 if up else f1 * 2**octaves
    dur = t[-1] + 1.0 / sr
    # Exponential sweep: f(t) = start * ratio ** (t / dur).
    phase = 2 * np.pi * start * dur / np.log(ratio) * (ratio ** (t / dur) - 1.0)
    return np.sin(phase + rng.uniform(0, 2 * np.pi))


def _harmonic(t, sr, rng):
    f0 = _carrier(rng, sr, 100.0, 800.0)
    ks = np.arange(1, int(rng.integers(4, 13)) + 1, dtype=float)
    amps = ks ** -rng.uniform(0.3, 1.2) * rng.uniform(0.6, 1.0, len(ks))
    return _harmonics(f0, t, sr, ks, amps, rng)


def _am_tone(t, sr, rng):
    rate, depth = rng.uniform(4.0, 16.0), rng.uniform(0.7, 1.0)
    envelope = 1.0 - depth * 0.5 * (1.0 + np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    return envelope * _tone(t, sr, rng)


def _fm_tone(t, sr, rng):
    fc = _carrier(rng, sr, 250.0)
    rate, depth = rng.uniform(3.0, 10.0), rng.uniform(0.05, 0.15)
    freq = fc * (1.0 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    return np.sin(2 * np.pi * np.cumsum(freq) / sr)


def _click_train(t, sr, rng):
    rate = rng.uniform(8.0, 40.0)
    out = np.zeros_like(t)
    positions = np.arange(rng.uniform(0, 1.0 / rate), t[-1], 1.0 / rate)
    out[(positions * sr).astype(int)] = 1.0
    # Each click is a short decaying noise burst (a few ms) of a random brightness.
    length = max(2, int(rng.uniform(0.001, 0.004) * sr))
    kernel = rng.standard_normal(length) * np.exp(-np.arange(length) / (0.3 * length))
    if rng.uniform() < 0.5:
        kernel = np.cumsum(kernel) * 0.3  # darker clicks
    return np.convolve(out, kernel)[: len(t)]


def _noise(exponent: float) -> Callable:
    def make(t, sr, rng):
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        return colored_noise(len(t), exponent, generator, torch.float64).numpy()

    return make


def _impact(t, sr, rng):
    out = np.zeros_like(t)
    base = _carrier(rng, sr, 150.0, 2000.0)
    for ratio in np.concatenate([[1.0], rng.uniform(1.5, 6.0, int(rng.integers(0, 4)))]):
        f = min(base * ratio, 0.45 * sr)
        tau = rng.uniform(0.01, 0.15)
        out += rng.uniform(0.3, 1.0) * np.exp(-t / tau) * np.sin(2 * np.pi * f * t)
    return out


def _square(t, sr, rng):
    f0 = _carrier(rng, sr, 100.0, 800.0)
    ks = np.arange(1, int(0.45 * sr / f0) + 1, 2, dtype=float)
    return _harmonics(f0, t, sr, ks, 1.0 / ks, rng)


def _square_wave(t, sr, rng):
    """A square wave as synthesisers write it: odd harmonics in phase (a peak-to-RMS ratio
    near 1, where :func:`_square`'s random phases give 2-3). A third the naive ``sign(sin)``
    with the aliasing that brings, the others band-limited below 0.45 of a rate: half of those
    of ``sr``, half of 8 or 11.025 kHz (``sox`` writes a square at such a rate with the
    harmonics below 0.45 of it: its 300 Hz square at 8 kHz ends at the 11th harmonic, 3.3 kHz;
    the file, read at ``sr``, has nothing above that)."""
    f0 = _carrier(rng, sr, 100.0, 800.0)
    phase = 2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi)
    kind = rng.integers(3)
    if kind == 0:
        return np.sign(np.sin(phase))
    top = 0.45 * (sr if kind == 1 else min(float(rng.choice([8000, 11025])), sr))
    ks = np.arange(1, int(top / f0) + 1, 2, dtype=float)
    return np.sum([np.sin(k * phase) / k for k in ks], axis=0)


def _sweep(t, sr, rng, up: bool):
    """A sweep over 0.2-3 octaves (log-uniform), exponential or linear in frequency: also the
    slow glides that every 1 s window of a sweep lasting several seconds is (:func:`_chirp`
    sweeps 1-3 octaves, exponentially, within the event)."""
    octaves = float(np.exp(rng.uniform(np.log(0.2), np.log(3.0))))
    high = min(3000.0, 0.35 * sr)
    low = _carrier(rng, sr, 150.0, high / 2**octaves)
    start, stop = (low, low * 2**octaves) if up else (low * 2**octaves, low)
    dur = t[-1] + 1.0 / sr
    if rng.uniform() < 0.5:  # exponential: f(t) = start * (stop / start) ** (t / dur)
        ratio = stop / start
        phase = 2 * np.pi * start * dur / np.log(ratio) * (ratio ** (t / dur) - 1.0)
    else:  # linear: f(t) = start + (stop - start) * t / dur
        phase = 2 * np.pi * (start * t + (stop - start) * t**2 / (2 * dur))
    return np.sin(phase + rng.uniform(0, 2 * np.pi))


_GENERATORS: dict[str, Callable] = {
    "tone": _tone,
    "chirp_up": lambda t, sr, rng: _chirp(t, sr, rng, up=True),
    "chirp_down": lambda t, sr, rng: _chirp(t, sr, rng, up=False),
    "harmonic": _harmonic,
    "am_tone": _am_tone,
    "fm_tone": _fm_tone,
    "click_train": _click_train,
    "white_noise": _noise(0.0),
    "pink_noise": _noise(1.0),
    "brown_noise": _noise(2.0),
    "impact": _impact,
    "square": _square,
}
#: the wider definitions ``variety_prob`` draws from instead of :data:`_GENERATORS`'
_VARIANTS: dict[str, Callable] = {
    "square": _square_wave,
    "chirp_up": lambda t, sr, rng: _sweep(t, sr, rng, up=True),
    "chirp_down": lambda t, sr, rng: _sweep(t, sr, rng, up=False),
}
_NO_FADE = ("impact", "click_train")  # sharp onsets are part of these classes


@DATASETS.register("synth_events")
class SynthEvents(torch.utils.data.Dataset):
    """Sound-event classification: one event in background noise per example.

    Items: ``{"wav": [T] float32, "label": int64 scalar, "id": str}``; ``.labels`` names the
    classes (:data:`EVENT_CLASSES`).

    Args:
        split: "train", "valid" or "test".
        sample_rate: in Hz (16000 by default; 8000 works, with a lower frequency range).
        segment_seconds: example length; None draws a length from ``duration_range``.
        num_examples: examples per split (default 5200 train, 520 valid, 1300 test).
        seed: seeds every example (and the talker pools of the speech class).
        background_snr_db: (low, high) SNR of the event (over its active span) to the
            background, or None for none. The background is coloured noise with a spectral
            slope drawn between pink and white-pink / pink-brown (1/f^0.5 to 1/f^1.5), so
            that noise-burst classes remain defined by their colour relative to it.
        background_prob: the fraction of examples that get a background (the others are the
            event in digital silence, as a clean recording or a synthesised file).
        fade_prob: the fraction of events (other than impacts and click trains, whose sharp
            onset defines them) faded in and out; the others start and stop abruptly, as a
            synthesised file does and as every window cut from a long recording does.
        event_fraction: (low, high) event duration as a fraction of the example (1.0: the
            event fills it, as every window of a long recording does).
        fill_prob: the fraction of examples whose event fills the whole clip, without fades:
            a window of a sound longer than the clip (a steady noise or tone in a long file).
            Noise colour is then seen without a stretch of background to compare it with.
        variety_prob: the fraction of ``square``, ``chirp_up`` and ``chirp_down`` events drawn
            from wider definitions: square waves with their harmonics in phase (naive, or
            band-limited to the clip's or to a lower rate's Nyquist, as synthesisers make them) and sweeps over 0.2-3 octaves,
            exponential or linear (slow glides as well as fast chirps).
        level_db: (low, high) RMS level of the event in dBFS.
        duration_range: (low, high) seconds when ``segment_seconds`` is None.
        augment: train split only: a :class:`~audionets.data.augment.WaveAugment` config
            (level, DC offset, resampling, band-limiting, reverberation) applied last.
    """

    def __init__(self, split: str = "train", sample_rate: int = 16000,
                 segment_seconds: float | None = 1.0, num_examples: int | None = None,
                 seed: int = 0, background_snr_db: Sequence[float] | None = (0.0, 30.0),
                 event_fraction: Sequence[float] = (0.3, 0.9),
                 level_db: Sequence[float] = (-35.0, -12.0),
                 duration_range: Sequence[float] = (1.0, 3.0),
                 background_prob: float = 1.0, fade_prob: float = 1.0,
                 fill_prob: float = 0.0, variety_prob: float = 0.0,
                 augment: dict | None = None) -> None:
        self.split = split
        self.code = split_code(split)
        self.sample_rate = int(sample_rate)
        if self.sample_rate < 4000:
            raise ConfigError(f"data.sample_rate: {sample_rate} Hz is too low; use >= 4000")
        self.segment_seconds = check_segment_seconds(segment_seconds)
        self.num_examples = example_count(num_examples, _DEFAULT_EXAMPLES, split)
        self.seed = int(seed)
        self.background_snr_db = None if background_snr_db is None else _pair(
            background_snr_db, "background_snr_db")
        self.event_fraction = _pair(event_fraction, "event_fraction")
        if not 0 < self.event_fraction[0] <= self.event_fraction[1] <= 1:
            raise ConfigError(f"data.event_fraction: {event_fraction!r} must lie in (0, 1]")
        self.level_db = _pair(level_db, "level_db")
        self.duration_range = _pair(duration_range, "duration_range")
        self.background_prob = _probability(background_prob, "background_prob")
        self.fade_prob = _probability(fade_prob, "fade_prob")
        self.fill_prob = _probability(fill_prob, "fill_prob")
        self.variety_prob = _probability(variety_prob, "variety_prob")
        self.augment = build_augment(augment, self.sample_rate) if split == "train" else None
        self.labels: list[str] = list(EVENT_CLASSES)
        self.speakers = speaker_pool(split, self.seed)

    def __len__(self) -> int:
        return self.num_examples

    def _event(self, name: str, length: int, rng: np.random.Generator,
               faded: bool = True, variant_rng: np.random.Generator | None = None) -> np.ndarray:
        """The event ``[length]``; drawn from :data:`_VARIANTS` with ``variant_rng`` when that
        is given and the class has a variant (``rng`` is then left as it was, so that the
        item's level and background stay those of the plain definition)."""
        sr = self.sample_rate
        if name == "speech":
            speaker = self.speakers[int(rng.integers(len(self.speakers)))]
            return synthesize_utterance(speaker, length / sr, sr, rng).astype(np.float64)
        t = np.arange(length) / sr
        if variant_rng is not None and name in _VARIANTS:
            wav = _VARIANTS[name](t, sr, variant_rng)
        else:
            wav = _GENERATORS[name](t, sr, rng)
        if name not in _NO_FADE:
            fade_in = max(1, min(int(rng.uniform(0.005, 0.05) * sr), length // 2))
            fade_out = max(1, min(int(rng.uniform(0.01, 0.1) * sr), length // 2))
            if not faded:  # abrupt edges (the fade lengths were drawn all the same)
                return wav
            envelope = np.ones(length)
            envelope[:fade_in] = np.minimum(envelope[:fade_in], np.linspace(0, 1, fade_in))
            envelope[-fade_out:] = np.minimum(envelope[-fade_out:], np.linspace(1, 0, fade_out))
            wav = wav * envelope
        return wav

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_examples:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.code, int(index), 0xE7E7])
        label = index % len(self.labels)
        seconds = (self.segment_seconds if self.segment_seconds is not None
                   else rng.uniform(*self.duration_range))
        length = max(1, int(round(seconds * self.sample_rate)))
        span = max(1, int(round(length * rng.uniform(*self.event_fraction))))
        onset = int(rng.integers(0, length - span + 1))
        # a draw of its own, so that fade_prob=1 keeps every item as before the option existed
        faded = self.fade_prob == 1.0 or np.random.default_rng(
            [self.seed, self.code, int(index), 0xFADE]).uniform() < self.fade_prob
        # fill and variant: draws of their own too, so that 0 keeps every item as it was
        if self.fill_prob > 0 and np.random.default_rng(
                [self.seed, self.code, int(index), 0xF111]).uniform() < self.fill_prob:
            span, onset, faded = length, 0, False
        variant_rng = None
        if self.variety_prob > 0:
            variant_rng = np.random.default_rng([self.seed, self.code, int(index), 0x7A7])
            if variant_rng.uniform() >= self.variety_prob:
                variant_rng = None
        event = self._event(self.labels[label], span, rng, faded, variant_rng)
        event_rms = np.sqrt(np.mean(event**2)) + 1e-12
        event *= 10.0 ** (rng.uniform(*self.level_db) / 20.0) / event_rms
        wav = np.zeros(length)
        wav[onset:onset + span] = event
        if self.background_snr_db is not None:
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            background = colored_noise(length, rng.uniform(0.5, 1.5), generator,
                                       torch.float64).numpy()
            snr = rng.uniform(*self.background_snr_db)
            # drawn last and only when some items go without, so that background_prob=1
            # keeps every item as it was before the option existed
            if self.background_prob == 1.0 or rng.uniform() < self.background_prob:
                wav += background * np.sqrt(np.mean(event**2)) / 10.0 ** (snr / 20.0)
        wav /= max(1.0, float(np.max(np.abs(wav))) / 0.99)
        out = torch.from_numpy(wav.astype(np.float32))
        if self.augment is not None:
            out = self.augment(out)
        return {
            "wav": out,
            "label": torch.tensor(label, dtype=torch.int64),
            "id": f"synth_events-{self.split}-{index:06d}-{self.labels[label]}",
        }


def _probability(value: float, key: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"data.{key}: {value!r} must lie in [0, 1]")
    return value


def _pair(value: Sequence[float], key: str) -> tuple[float, float]:
    values = [float(v) for v in value]
    if len(values) != 2 or values[0] > values[1]:
        raise ConfigError(f"data.{key}: expected [low, high] with low <= high, got {value!r}")
    return values[0], values[1]
