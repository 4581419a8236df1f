"""Speech-like utterances from a source-filter model, and the ``synth_speech`` dataset.

An utterance is a sequence of words separated by pauses; a word is one to three syllables; a
syllable is an optional consonant onset (fricative noise, or a plosive: closure then burst), a
vowel nucleus, and an optional fricative coda. The source is a Rosenberg glottal-flow pulse
train (its derivative, which includes lip radiation) driven by a moving F0 contour
(declination, per-word intonation, vibrato, jitter, shimmer) with aspiration noise mixed in by
the speaker's breathiness. The filter is a cascade of formant resonators moving between vowel
targets (Peterson & Barney F1-F3, F4/F5 fixed), scaled by the speaker's vocal-tract factor;
fricatives are band-passed noise.

Filtering is done frame-wise in the STFT domain (time-varying zero-phase magnitude responses,
evaluated for all frames at once), which keeps synthesis vectorised: a 4 s utterance at 8 kHz
takes a few milliseconds on one core.

Speakers are identities drawn from ``(seed, speaker_id)``; :func:`speaker_pool` gives disjoint
id ranges for train / valid / test, so no speaker of one split appears in another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from audionets.errors import ConfigError
from audionets.registry import DATASETS

# Peterson & Barney (1952) average adult male formants F1, F2, F3 in Hz.
VOWELS: dict[str, tuple[float, float, float]] = {
    "iy": (270.0, 2290.0, 3010.0),
    "ih": (390.0, 1990.0, 2550.0),
    "eh": (530.0, 1840.0, 2480.0),
    "ae": (660.0, 1720.0, 2410.0),
    "ah": (520.0, 1190.0, 2390.0),
    "aa": (730.0, 1090.0, 2440.0),
    "ao": (570.0, 840.0, 2410.0),
    "uh": (440.0, 1020.0, 2240.0),
    "uw": (300.0, 870.0, 2240.0),
    "er": (490.0, 1350.0, 1690.0),
}
_VOWEL_TABLE = np.array(list(VOWELS.values()), dtype=np.float64)  # [V, 3]
_HIGH_FORMANTS = np.array([3500.0, 4500.0])  # F4, F5 of a male vocal tract
_BANDWIDTHS = np.array([70.0, 100.0, 140.0, 250.0, 300.0])  # B1..B5 in Hz

#: Id offsets of each split's speaker pool (and of the babble-noise talkers in mixtures).
SPLIT_SPEAKER_OFFSET = {"train": 0, "valid": 100_000, "test": 200_000, "noise": 300_000}
#: Default number of speakers per split.
SPLIT_NUM_SPEAKERS = {"train": 200, "valid": 20, "test": 20, "noise": 50}
_SPLIT_CODE = {"train": 0, "valid": 1, "test": 2, "noise": 3}


@dataclass(frozen=True)
class Speaker:
    """The identity of a synthetic talker: what makes two talkers sound different.

    Attributes:
        speaker_id: integer id; with the pool seed it determines every other field.
        f0_mean: mean fundamental frequency in Hz (about 85-260).
        f0_range: standard deviation of the intonation in semitones.
        formant_scale: multiplier of all formant frequencies (1 / vocal-tract length factor);
            above 1 for a shorter vocal tract.
        breathiness: level of aspiration noise relative to the voiced source (0-0.6).
        speaking_rate: syllables are ``1 / speaking_rate`` as long as the default.
        jitter: relative period-to-period F0 perturbation (standard deviation).
        shimmer: relative period-to-period amplitude perturbation.
        vibrato_depth: vibrato depth in semitones; ``vibrato_rate`` in Hz.
        open_quotient: fraction of each glottal period the glottis is open.
        tilt_db: extra spectral tilt in dB per octave above 500 Hz (negative: darker voice).
    """

    speaker_id: int
    f0_mean: float
    f0_range: float
    formant_scale: float
    breathiness: float
    speaking_rate: float
    jitter: float
    shimmer: float
    vibrato_depth: float
    vibrato_rate: float
    open_quotient: float
    tilt_db: float

    @classmethod
    def from_seed(cls, speaker_id: int, seed: int = 0) -> "Speaker":
        """Draw a speaker deterministically from ``(seed, speaker_id)``."""
        rng = np.random.default_rng([int(seed), int(speaker_id), 0x5BEA])
        # A voice "size" in [0, 1] couples F0 and vocal-tract length as in real talkers,
        # with independent spread so that each varies on its own too.
        size = rng.uniform(0.0, 1.0)
        f0_mean = float(np.exp(np.log(85.0) + size * np.log(260.0 / 85.0)) * rng.uniform(0.9, 1.1))
        formant_scale = float(np.clip(0.92 + 0.3 * size + rng.normal(0.0, 0.04), 0.85, 1.3))
        return cls(
            speaker_id=int(speaker_id),
            f0_mean=f0_mean,
            f0_range=float(rng.uniform(0.8, 3.0)),
            formant_scale=formant_scale,
            breathiness=float(rng.uniform(0.02, 0.6)),
            speaking_rate=float(rng.uniform(0.75, 1.35)),
            jitter=float(rng.uniform(0.003, 0.02)),
            shimmer=float(rng.uniform(0.02, 0.1)),
            vibrato_depth=float(rng.uniform(0.0, 0.4)),
            vibrato_rate=float(rng.uniform(4.0, 7.0)),
            open_quotient=float(rng.uniform(0.45, 0.75)),
            tilt_db=float(rng.uniform(-4.0, 1.0)),
        )


def speaker_pool(split: str, seed: int = 0, num_speakers: int | None = None) -> list[Speaker]:
    """The speakers of ``split`` ("train", "valid", "test", or "noise" for babble talkers).

    Ids of different splits come from disjoint ranges (:data:`SPLIT_SPEAKER_OFFSET`), so the
    pools never share a speaker. ``num_speakers`` defaults to :data:`SPLIT_NUM_SPEAKERS`.
    """
    if split not in SPLIT_SPEAKER_OFFSET:
        raise ConfigError(f"data.split: unknown split {split!r}; use train, valid or test")
    count = SPLIT_NUM_SPEAKERS[split] if num_speakers is None else int(num_speakers)
    if not 0 < count <= 100_000:
        raise ConfigError(f"data.num_speakers: {count} must be in 1..100000")
    offset = SPLIT_SPEAKER_OFFSET[split]
    return [Speaker.from_seed(offset + i, seed) for i in range(count)]


def split_code(split: str) -> int:
    """A small integer for ``split``, used to seed per-item random generators."""
    try:
        return _SPLIT_CODE[split]
    except KeyError:
        raise ConfigError(
            f"data.split: unknown split {split!r}; use train, valid or test") from None


def check_segment_seconds(segment_seconds: float | None) -> float | None:
    """``data.segment_seconds`` of the synthetic datasets: a positive length or None."""
    if segment_seconds is not None and segment_seconds <= 0:
        raise ConfigError(f"data.segment_seconds: {segment_seconds} must be > 0 or null")
    return segment_seconds


def example_count(num_examples: int | None, defaults: dict[str, int], split: str) -> int:
    """``data.num_examples`` of the synthetic datasets, or the split's default; must be > 0."""
    count = defaults[split] if num_examples is None else int(num_examples)
    if count <= 0:
        raise ConfigError(f"data.num_examples: {count} must be > 0")
    return count


def _stft_sizes(sample_rate: int) -> tuple[int, int, int]:
    """(n_fft, win_length, hop) for ~32 ms windows; n_fft = 2 * window leaves room for tails."""
    win = 1 << int(round(np.log2(0.032 * sample_rate)))
    return 2 * win, win, win // 4


class _Timeline:
    """Frame-rate control tracks of one utterance, filled syllable by syllable."""

    def __init__(self, num_frames: int, frame_rate: float) -> None:
        self.num_frames = num_frames
        self.frame_rate = frame_rate
        self.voiced = np.zeros(num_frames)  # amplitude of the voiced source
        self.noise = np.zeros(num_frames)  # amplitude of frication / burst noise
        self.noise_center = np.full(num_frames, 3000.0)  # fricative band centre, Hz
        self.noise_q = np.full(num_frames, 1.5)  # fricative band quality factor
        self.formant_times: list[float] = []  # frame positions of vowel targets
        self.formant_targets: list[np.ndarray] = []  # [3] F1-F3 per target (male scale)
        self.pitch_times: list[float] = []  # frame positions of intonation points
        self.pitch_points: list[float] = []  # semitones relative to the speaker mean

    def frames(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.frame_rate)))

    def ramp(self, track: np.ndarray, start: int, length: int, level: float,
             attack: int, release: int) -> None:
        """Add a raised-cosine-edged plateau of ``level`` on frames [start, start+length)."""
        stop = min(start + length, self.num_frames)
        if stop <= start:
            return
        env = np.full(stop - start, level)
        a = min(attack, len(env))
        r = min(release, len(env) - a)
        if a > 0:
            env[:a] *= 0.5 - 0.5 * np.cos(np.pi * (np.arange(a) + 0.5) / a)
        if r > 0:
            env[len(env) - r:] *= 0.5 + 0.5 * np.cos(np.pi * (np.arange(r) + 0.5) / r)
        track[start:stop] = np.maximum(track[start:stop], env)


def _plan(speaker: Speaker, tl: _Timeline, sample_rate: int, rng: np.random.Generator) -> None:
    """Lay out words, syllables, pauses and their control targets on the timeline."""
    rate = speaker.speaking_rate
    nyquist = sample_rate / 2
    t = int(rng.uniform(0.0, min(0.15 * tl.frame_rate, 0.2 * tl.num_frames)))
    while t < tl.num_frames:
        word_start = t
        word_pitch = rng.normal(0.0, speaker.f0_range)
        rise = rng.normal(0.0, speaker.f0_range * 0.7)
        for syllable in range(int(rng.integers(1, 4))):
            if t >= tl.num_frames:
                break
            onset = rng.uniform()
            if onset < 0.35:  # fricative onset
                length = tl.frames(rng.uniform(0.05, 0.12) / rate)
                center = min(rng.uniform(2000.0, 6500.0) * speaker.formant_scale, 0.8 * nyquist)
                tl.noise_center[t:t + length] = center
                tl.noise_q[t:t + length] = rng.uniform(0.8, 3.0)
                tl.ramp(tl.noise, t, length, rng.uniform(0.1, 0.35), tl.frames(0.015),
                        tl.frames(0.015))
                t += length
            elif onset < 0.6:  # plosive: closure (silence) then a short burst
                t += tl.frames(rng.uniform(0.03, 0.07) / rate)
                length = tl.frames(rng.uniform(0.01, 0.025))
                tl.noise_center[t:t + length + 2] = min(rng.uniform(800.0, 4500.0), 0.8 * nyquist)
                tl.noise_q[t:t + length + 2] = 0.7
                tl.ramp(tl.noise, t, length + 2, rng.uniform(0.3, 0.6), 1, 2)
                t += length
            length = tl.frames(rng.uniform(0.07, 0.22) / rate)
            stress = rng.uniform(0.45, 1.0)
            tl.ramp(tl.voiced, t, length, stress, tl.frames(0.025), tl.frames(0.04))
            tl.formant_times.append(t + length / 2)
            tl.formant_targets.append(_VOWEL_TABLE[rng.integers(len(_VOWEL_TABLE))])
            tl.pitch_times.append(t + length / 2)
            tl.pitch_points.append(word_pitch + rise * syllable / 2 + 1.5 * (stress - 0.7))
            t += length
            if rng.uniform() < 0.2:  # fricative coda
                length = tl.frames(rng.uniform(0.04, 0.1) / rate)
                tl.noise_center[t:t + length] = min(
                    rng.uniform(2500.0, 6500.0) * speaker.formant_scale, 0.8 * nyquist)
                tl.noise_q[t:t + length] = rng.uniform(0.8, 3.0)
                tl.ramp(tl.noise, t, length, rng.uniform(0.08, 0.25), tl.frames(0.01),
                        tl.frames(0.02))
                t += length
        if t == word_start:
            t += 1
        pause = rng.uniform(0.3, 0.7) if rng.uniform() < 0.15 else rng.uniform(0.04, 0.3)
        t += tl.frames(pause / rate)


def _rosenberg_derivative(phase: np.ndarray, open_quotient: float) -> np.ndarray:
    """Derivative (per unit phase) of a Rosenberg glottal flow pulse at ``phase`` in [0, 1)."""
    opening = 0.65 * open_quotient
    closing = open_quotient - opening
    out = np.zeros_like(phase)
    rising = phase < opening
    out[rising] = 0.5 * np.pi / opening * np.sin(np.pi * phase[rising] / opening)
    falling = (~rising) & (phase < open_quotient)
    closing_phase = (phase[falling] - opening) / closing
    out[falling] = -0.5 * np.pi / closing * np.sin(0.5 * np.pi * closing_phase)
    return out


def _resonator_gain(freqs: np.ndarray, centers: np.ndarray, bandwidths: np.ndarray,
                    sample_rate: int) -> np.ndarray:
    """Magnitude responses of cascaded digital 2-pole resonators, unit gain at DC.

    A resonator ``1 / ((1 - p z^-1)(1 - conj(p) z^-1))`` with pole ``p = r e^{i theta}`` has
    ``|A(w)|^2 = (1 + r^2 - 2 r cos(w - theta)) (1 + r^2 - 2 r cos(w + theta))``; the cosines
    are expanded so that no trigonometric function is evaluated on the full grid.

    Args:
        freqs: [F] analysis frequencies in Hz.
        centers: [N, K] resonance frequencies per frame; bandwidths: [K] in Hz.
    Returns:
        [N, F] product of the K magnitude responses.
    """
    r = np.exp(-np.pi * bandwidths / sample_rate)[None, :, None]  # [1, K, 1]
    theta = (2 * np.pi / sample_rate) * centers[:, :, None]  # [N, K, 1]
    omega = (2 * np.pi / sample_rate) * freqs[None, None, :]  # [1, 1, F]
    a = 1.0 + r**2
    rc, rs = 2.0 * r * np.cos(theta), 2.0 * r * np.sin(theta)  # [N, K, 1]
    cw, sw = np.cos(omega), np.sin(omega)  # [1, 1, F]
    cross_c, cross_s = rc * cw, rs * sw  # 2r cos(theta) cos(w), 2r sin(theta) sin(w)
    power = (a - cross_c - cross_s) * (a - cross_c + cross_s)  # |A(w)|^2, [N, K, F]
    dc = (a - rc) ** 2  # |A(0)|^2, [N, K, 1]
    return np.sqrt(np.prod(dc, axis=1) / np.prod(power, axis=1))


def synthesize_utterance(speaker: Speaker, duration_s: float, sample_rate: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Synthesize ``duration_s`` seconds of speech-like audio by ``speaker``.

    Args:
        speaker: the talker's identity.
        duration_s: length in seconds; the output has ``round(duration_s * sample_rate)``
            samples (speech may end in a pause).
        sample_rate: in Hz (8000 or 16000 typically; at least 4000).
        rng: the source of all randomness (the words, pauses and noise).
    Returns:
        float32 array [T] with an RMS of about 0.05 over the whole utterance (not silent).
    """
    num_samples = int(round(duration_s * sample_rate))
    if num_samples <= 0:
        raise ConfigError(f"data.segment_seconds: utterance length {duration_s} s must be > 0")
    if sample_rate < 4000:
        raise ConfigError(f"data.sample_rate: {sample_rate} Hz is too low; use >= 4000")
    n_fft, win, hop = _stft_sizes(sample_rate)
    wanted, num_samples = num_samples, max(num_samples, n_fft)  # the STFT needs >= n_fft
    num_frames = num_samples // hop + 1  # what torch.stft(center=True) produces
    tl = _Timeline(num_frames, sample_rate / hop)
    _plan(speaker, tl, sample_rate, rng)
    frame_pos = np.arange(num_frames, dtype=np.float64)

    # F0 contour (frame rate): declination + intonation + vibrato, then jitter per sample.
    seconds = frame_pos / tl.frame_rate
    declination = rng.uniform(1.0, 4.0) * (0.5 - frame_pos / max(num_frames - 1, 1))
    intonation = np.interp(frame_pos, tl.pitch_times or [0.0], tl.pitch_points or [0.0])
    vibrato = speaker.vibrato_depth * np.sin(2 * np.pi * speaker.vibrato_rate * seconds
                                             + rng.uniform(0, 2 * np.pi))
    semitones = declination + intonation + vibrato
    sample_pos = np.arange(num_samples) / hop
    f0 = speaker.f0_mean * 2.0 ** (np.interp(sample_pos, frame_pos, semitones) / 12.0)
    f0 = np.clip(f0, 50.0, 0.45 * sample_rate / 2)
    # Jitter and shimmer: values held for ~ one period, so each pulse gets its own.
    period = max(1, int(sample_rate / speaker.f0_mean))
    blocks = num_samples // period + 1
    f0 *= 1.0 + speaker.jitter * np.repeat(rng.standard_normal(blocks), period)[:num_samples]
    shimmer = 1.0 + speaker.shimmer * np.repeat(rng.standard_normal(blocks), period)[:num_samples]
    phase = np.cumsum(f0 / sample_rate) + rng.uniform()
    glottal = _rosenberg_derivative(phase % 1.0, speaker.open_quotient) * shimmer
    glottal /= np.sqrt(np.mean(glottal**2)) + 1e-12
    # Aspiration: noise gated by the glottal cycle (louder while open), mixed by breathiness.
    gate = 0.35 + ((phase % 1.0) < speaker.open_quotient)
    voiced = glottal + speaker.breathiness * gate * rng.standard_normal(num_samples)
    noise = rng.standard_normal(num_samples)

    window = torch.hann_window(win)
    excitation = torch.from_numpy(np.stack([voiced, noise]).astype(np.float32))
    spec = torch.stft(excitation, n_fft, hop, win, window, center=True,
                      return_complex=True).numpy().transpose(0, 2, 1)  # [2, N, F]
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    out = np.zeros(spec.shape[1:], dtype=spec.dtype)  # [N, F]

    # Vocal tract: F1-F3 move between vowel targets; F4-F5 are fixed; all scaled. Only
    # frames that carry voicing (or frication) are filtered: the rest stay silent.
    nyquist = 0.95 * sample_rate / 2
    bandwidths = _BANDWIDTHS * (1.0 + 0.5 * speaker.breathiness)
    high = _HIGH_FORMANTS * speaker.formant_scale
    keep = high < nyquist
    fixed = _resonator_gain(freqs, high[keep][None, :], bandwidths[3:][keep], sample_rate)
    tilt = 10.0 ** (speaker.tilt_db * np.log2(np.maximum(freqs, 500.0) / 500.0) / 20.0)
    fixed = (fixed[0] * tilt).astype(np.float32)  # [F]
    vidx = np.flatnonzero(tl.voiced > 0)
    if len(vidx):
        targets = np.stack(tl.formant_targets) if tl.formant_targets else _VOWEL_TABLE[4:5]
        times = tl.formant_times if tl.formant_targets else [0.0]
        f123 = np.stack([np.interp(vidx, times, targets[:, k]) for k in range(3)], axis=1)
        centers = np.minimum(f123 * speaker.formant_scale, nyquist).astype(np.float32)
        tract = _resonator_gain(freqs.astype(np.float32), centers,
                                bandwidths[:3].astype(np.float32), sample_rate)  # [n, F]
        out[vidx] = spec[0, vidx] * (tract * fixed * tl.voiced[vidx, None].astype(np.float32))
    # Frication: band-pass noise of quality factor q around the per-frame centre.
    nidx = np.flatnonzero(tl.noise > 0)
    if len(nidx):
        f = np.maximum(freqs, 1.0)[None, :]
        fc = tl.noise_center[nidx, None]
        band = 3.0 * tl.noise[nidx, None] / np.sqrt(
            1.0 + tl.noise_q[nidx, None] ** 2 * (f / fc - fc / f) ** 2)  # [n, F]
        out[nidx] += spec[1, nidx] * band.astype(np.float32)
    wav = torch.istft(torch.from_numpy(out.T), n_fft, hop, win, window, center=True,
                      length=num_samples).numpy().astype(np.float64)[:wanted]
    rms = np.sqrt(np.mean(wav**2))
    if rms < 1e-8:  # too short to hold a syllable: fall back to the breathy source itself
        wav = voiced[:wanted]
        rms = np.sqrt(np.mean(wav**2)) + 1e-12
    return (0.05 / rms * wav).astype(np.float32)


@DATASETS.register("synth_speech")
class SynthSpeech(torch.utils.data.Dataset):
    """Single-talker speech-like utterances, for reconstruction (autoencoder) training.

    Item ``i`` of a split is fully determined by ``(seed, split, i)``; talkers of different
    splits are disjoint (:func:`speaker_pool`). Items: ``{"wav": [T] float32, "id": str}``
    with ``T = segment_seconds * sample_rate``, or a length drawn from ``duration_range``
    when ``segment_seconds`` is None. Levels are drawn in ``gain_db_range`` (dBFS RMS).

    Args:
        split: "train", "valid" or "test".
        sample_rate: output rate in Hz.
        segment_seconds: length of every item, or None for variable lengths.
        num_examples: items per split (default 2000 train, 200 valid/test).
        seed: the seed of the speaker pools and of every item.
        num_speakers: size of this split's speaker pool (default :data:`SPLIT_NUM_SPEAKERS`).
        duration_range: (min, max) seconds when ``segment_seconds`` is None.
        gain_db_range: (min, max) RMS level in dBFS.
    """

    def __init__(self, split: str = "train", sample_rate: int = 8000,
                 segment_seconds: float | None = 2.0, num_examples: int | None = None,
                 seed: int = 0, num_speakers: int | None = None,
                 duration_range: tuple[float, float] = (1.0, 4.0),
                 gain_db_range: tuple[float, float] = (-35.0, -15.0)) -> None:
        self.split = split
        self.code = split_code(split)
        self.sample_rate = int(sample_rate)
        self.segment_seconds = check_segment_seconds(segment_seconds)
        self.num_examples = example_count(
            num_examples, {"train": 2000, "valid": 200, "test": 200}, split)
        self.seed = int(seed)
        self.speakers = speaker_pool(split, self.seed, num_speakers)
        self.duration_range = tuple(float(x) for x in duration_range)
        self.gain_db_range = tuple(float(x) for x in gain_db_range)

    def __len__(self) -> int:
        return self.num_examples

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_examples:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.code, int(index), 0x5EEC])
        speaker = self.speakers[int(rng.integers(len(self.speakers)))]
        duration = (self.segment_seconds if self.segment_seconds is not None
                    else rng.uniform(*self.duration_range))
        wav = synthesize_utterance(speaker, duration, self.sample_rate, rng)
        level = rng.uniform(*self.gain_db_range)
        wav = wav * (10.0 ** (level / 20.0) / 0.05)
        wav = wav / max(1.0, float(np.max(np.abs(wav))) / 0.99)
        return {"wav": torch.from_numpy(wav.astype(np.float32)),
                "id": f"synth_speech-{self.split}-{index:06d}-spk{speaker.speaker_id}"}
