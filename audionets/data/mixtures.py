"""WSJ0-2mix-style mixtures of synthetic talkers: the ``synth_mix`` dataset.

Each example draws ``num_speakers`` distinct talkers from its split's pool
(:func:`~audionets.data.speech.speaker_pool`; pools of different splits are disjoint),
synthesises one utterance each, places it at a random offset so that it covers at least
``min_coverage`` of the example, normalises every source to the same active level, applies
relative gains (each source after the first is louder or quieter than the first by a level
drawn in ``gain_db_range``, as the 0-5 dB of wsj0-2mix), optionally adds noise at a random
SNR, and finally rescales everything so that the largest peak of the mixture, the sources and
the noise is 0.9 (wsj0-2mix's anti-clipping scale). The mixture is exactly the sum of the
returned sources (plus the returned noise).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from audionets.data.speech import (
    check_segment_seconds, example_count, speaker_pool, split_code, synthesize_utterance,
)
from audionets.data.transforms import active_rms, colored_noise
from audionets.errors import ConfigError
from audionets.registry import DATASETS

NOISE_TYPES = ("white", "pink", "brown", "babble")
_NOISE_EXPONENT = {"white": 0.0, "pink": 1.0, "brown": 2.0}
_DEFAULT_EXAMPLES = {"train": 10000, "valid": 500, "test": 500}


def _range(value: float | Sequence[float] | None, key: str) -> tuple[float, float] | None:
    """A number or a [low, high] pair from a config as a (low, high) tuple."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value), float(value)
    values = [float(v) for v in value]
    if len(values) != 2 or values[0] > values[1]:
        raise ConfigError(f"data.{key}: expected a number or [low, high], got {value!r}")
    return values[0], values[1]


@DATASETS.register("synth_mix")
class SynthMix(torch.utils.data.Dataset):
    """Synthetic speech separation examples, fully determined by ``(seed, split, index)``.

    Items: ``{"mix": [T], "sources": [S, T], "id": str}`` float32 (plus ``"noise": [T]`` when
    ``noise_snr_db`` is set), with ``mix == sources.sum(0) (+ noise)``.

    Args:
        split: "train", "valid" or "test" (disjoint talker pools).
        num_speakers: sources per mixture (2 or 3 usually).
        sample_rate: in Hz (8000 or 16000 usually).
        segment_seconds: length of every example; None draws a length per example from
            ``duration_range`` (evaluate with batch size 1).
        num_examples: examples per split (default 10000 train, 500 valid/test).
        seed: seeds the talker pools and every example.
        noise_snr_db: None for clean mixtures, a number, or [low, high] for an SNR (dB, of
            the speech mixture over the noise) drawn per example.
        noise_type: one of "white", "pink", "brown", "babble" (sum of talkers from a separate
            pool), or a list to draw from per example.
        gain_db_range: (low, high) level difference in dB between each source after the first
            and the first one; its sign is random.
        dynamic: train only: draw fresh examples every epoch (call :meth:`set_epoch`, as the
            trainer does); valid/test are always fixed sets.
        pool_size: talkers in this split's pool (default 200 train, 20 valid/test).
        min_coverage: each utterance spans at least this fraction of the example.
        duration_range: (low, high) seconds when ``segment_seconds`` is None.
    """

    def __init__(self, split: str = "train", num_speakers: int = 2, sample_rate: int = 8000,
                 segment_seconds: float | None = 4.0, num_examples: int | None = None,
                 seed: int = 0, noise_snr_db: float | Sequence[float] | None = None,
                 noise_type: str | Sequence[str] = ("white", "pink", "babble"),
                 gain_db_range: Sequence[float] = (0.0, 5.0), dynamic: bool = False,
                 pool_size: int | None = None, min_coverage: float = 0.75,
                 duration_range: Sequence[float] = (3.0, 6.0)) -> None:
        self.split = split
        self.code = split_code(split)
        if int(num_speakers) < 1:
            raise ConfigError(f"data.num_speakers: {num_speakers} must be >= 1")
        self.num_speakers = int(num_speakers)
        self.sample_rate = int(sample_rate)
        self.segment_seconds = check_segment_seconds(segment_seconds)
        self.num_examples = example_count(num_examples, _DEFAULT_EXAMPLES, split)
        self.seed = int(seed)
        self.noise_snr_db = _range(noise_snr_db, "noise_snr_db")
        types = [noise_type] if isinstance(noise_type, str) else list(noise_type)
        bad = [t for t in types if t not in NOISE_TYPES]
        if bad or not types:
            raise ConfigError(
                f"data.noise_type: {bad or types!r}; choose from {', '.join(NOISE_TYPES)}")
        self.noise_types = types
        gains = _range(gain_db_range, "gain_db_range")
        assert gains is not None
        if gains[0] < 0:
            raise ConfigError(
                f"data.gain_db_range: {gain_db_range!r} must be >= 0 (the sign is random)")
        self.gain_db_range = gains
        self.dynamic = bool(dynamic) and split == "train"
        self.epoch = 0
        if not 0 < min_coverage <= 1:
            raise ConfigError(f"data.min_coverage: {min_coverage} must be in (0, 1]")
        self.min_coverage = float(min_coverage)
        duration = _range(duration_range, "duration_range")
        assert duration is not None
        self.duration_range = duration
        self.speakers = speaker_pool(split, self.seed, pool_size)
        if len(self.speakers) < self.num_speakers:
            raise ConfigError(
                f"data.pool_size: {len(self.speakers)} talkers cannot make "
                f"{self.num_speakers}-talker mixtures; raise pool_size"
            )
        self._babble: list | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the examples of ``epoch`` (only changes anything when ``dynamic``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_examples

    def _rng(self, index: int) -> np.random.Generator:
        epoch = self.epoch if self.dynamic else 0
        return np.random.default_rng([self.seed, self.code, int(index), epoch, 0x313C])

    def _utterance(self, speaker, length: int, rng: np.random.Generator) -> np.ndarray:
        """One talker's utterance [length], covering a random span of >= min_coverage."""
        span = int(round(length * rng.uniform(self.min_coverage, 1.0)))
        span = max(span, 1)
        offset = int(rng.integers(0, length - span + 1))
        out = np.zeros(length, dtype=np.float64)
        out[offset:offset + span] = synthesize_utterance(
            speaker, span / self.sample_rate, self.sample_rate, rng)
        return out

    def _noise(self, kind: str, length: int, rng: np.random.Generator) -> np.ndarray:
        if kind == "babble":
            if self._babble is None:
                self._babble = speaker_pool("noise", self.seed)
            talkers = rng.choice(len(self._babble), size=int(rng.integers(3, 7)), replace=False)
            noise = np.zeros(length)
            for t in talkers:
                part = self._utterance(self._babble[t], length, rng)
                noise += part / active_rms(part, self.sample_rate)
            return noise
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        return colored_noise(length, _NOISE_EXPONENT[kind], generator, torch.float64).numpy()

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_examples:
            raise IndexError(index)
        rng = self._rng(index)
        seconds = (self.segment_seconds if self.segment_seconds is not None
                   else rng.uniform(*self.duration_range))
        length = max(1, int(round(seconds * self.sample_rate)))
        chosen = rng.choice(len(self.speakers), size=self.num_speakers, replace=False)
        sources = np.stack([self._utterance(self.speakers[c], length, rng) for c in chosen])
        levels_db = np.zeros(self.num_speakers)
        if self.num_speakers > 1:
            diffs = rng.uniform(*self.gain_db_range, size=self.num_speakers - 1)
            levels_db[1:] = diffs * rng.choice([-1.0, 1.0], size=self.num_speakers - 1)
        for k in range(self.num_speakers):
            sources[k] *= 10.0 ** (levels_db[k] / 20.0) / active_rms(sources[k], self.sample_rate)
        speech = sources.sum(axis=0)
        noise = None
        if self.noise_snr_db is not None:
            kind = self.noise_types[int(rng.integers(len(self.noise_types)))]
            noise = self._noise(kind, length, rng)
            snr = rng.uniform(*self.noise_snr_db)
            ratio = np.sqrt(np.mean(speech**2) / (np.mean(noise**2) + 1e-20))
            noise *= ratio / 10.0 ** (snr / 20.0)
        peaks = [np.max(np.abs(sources)), np.max(np.abs(speech))]
        if noise is not None:
            peaks += [np.max(np.abs(noise)), np.max(np.abs(speech + noise))]
        scale = 0.9 / max(max(peaks), 1e-12)
        sources_t = torch.from_numpy((sources * scale).astype(np.float32))
        mix = sources_t.sum(dim=0)
        ids = "_".join(f"spk{self.speakers[c].speaker_id}" for c in chosen)
        item = {"mix": mix, "sources": sources_t,
                "id": f"synth_mix{self.num_speakers}-{self.split}-{index:06d}-{ids}"}
        if noise is not None:
            noise_t = torch.from_numpy((noise * scale).astype(np.float32))
            item["mix"] = mix + noise_t
            item["noise"] = noise_t
        return item
