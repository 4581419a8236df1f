"""``tts_mix``: mixtures of synthesized speech (and built-in talkers), mixed WSJ0-2mix style.

A free stand-in for WSJ0-2mix that anyone can build offline. The speech comes from a cached
pool of espeak-ng and festival utterances (:mod:`audionets.data.speech_pool`: thousands of
voices, split so that no language and no voice variant of a valid/test voice is heard in
training); build it once with ``audionets prepare-tts-mix DIR`` or let the dataset build it on
first use (``auto_prepare``).

Each mixture has ``num_speakers`` sources. ``mix_kinds`` sets how often a mixture is

- ``tts``: synthesized utterances of different voices of the split,
- ``tts_builtin``: one synthesized utterance, the others built-in source-filter talkers
  (:mod:`audionets.data.speech`, the talkers of ``synth_mix``; the split's own pool),
- ``builtin``: built-in talkers only,

and the sources are mixed as :func:`~audionets.data.layouts.mix_utterances` does (unit active
level, then each after the first 0-5 dB louder or quieter than the first, ``gain_db``).

Talkers at the same pitch are the hard case (their harmonics overlap; see
``recipes/tts_mix/pitch_breakdown.py``), and random pairs rarely are: with ``close_pitch`` that
share of the ``tts`` mixtures draws each talker after the first among the other voices' utterances
within ``close_semitones`` of the first one's median F0 (the pool manifest's ``f0_hz``). With
``noise_snr_db`` a white / pink / brown noise at that SNR below the speech is added to the
mixture (not to the sources). Train items are drawn afresh on each access from the global
RNGs (which the trainer seeds per item); valid/test items are fixed by ``(seed, index)``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from audionets.data import speech_pool
from audionets.data.layouts import (
    check_files_exist, check_gain_range, check_split, load_mono, mix_utterances,
    root_dir, uniform,
)
from audionets.data.speech import example_count, speaker_pool, synthesize_utterance
from audionets.data.transforms import active_rms, colored_noise, segment_length
from audionets.errors import ConfigError, check_choice
from audionets.registry import DATASETS

MIX_KINDS = ("tts", "tts_builtin", "builtin")
NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}
_DEFAULT_MIXTURES = {"train": 10000, "valid": 300, "test": 300}
#: Length of a built-in talker's utterance, seconds (about that of the synthesized ones).
BUILTIN_SECONDS = (2.5, 6.0)


def espeak_binary() -> str | None:
    """Path of the ``espeak-ng`` program, or None (tests skip without it)."""
    import shutil

    return shutil.which("espeak-ng")


def _check_mix_kinds(mix_kinds: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(mix_kinds, Mapping) or not mix_kinds:
        raise ConfigError(f"data.mix_kinds: expected a mapping like {{tts: 0.6, tts_builtin: 0.2, "
                          f"builtin: 0.2}}, got {mix_kinds!r}")
    unknown = sorted(set(mix_kinds) - set(MIX_KINDS))
    if unknown:
        raise ConfigError(f"data.mix_kinds: unknown {unknown}; use {', '.join(MIX_KINDS)}")
    weights = {k: float(v) for k, v in mix_kinds.items()}
    if any(not np.isfinite(w) or w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ConfigError(f"data.mix_kinds: weights must be >= 0 with a positive sum, got "
                          f"{mix_kinds!r}")
    return weights


def _check_close_pitch(share: float, semitones: float) -> tuple[float, float]:
    if not 0.0 <= float(share) <= 1.0:
        raise ConfigError(f"data.close_pitch: need a share in [0, 1], got {share!r}")
    if not float(semitones) > 0.0:
        raise ConfigError(f"data.close_semitones: need a positive number of semitones, got "
                          f"{semitones!r}")
    return float(share), float(semitones)


@DATASETS.register("tts_mix")
class TTSMix(Dataset):
    """Mixtures of synthesized voices: ``{"mix": [T], "sources": [S, T], "id": str}``.

    Args:
        root: the pool folder (built there when missing and ``auto_prepare`` is true).
        split: ``"train"``, ``"valid"`` or ``"test"`` (disjoint voices, languages, variants).
        sample_rate: mixtures are made at this rate (the pool's rate avoids resampling).
        segment_seconds: crop/pad length; None keeps "min" mode full length.
        num_speakers: talkers per mixture (2 or 3).
        num_mixtures: items of this split (default 10000 train per epoch, 300 valid/test).
        gain_db: ``[low, high]`` dB, the level difference of each source after the first to
            the first (random sign).
        mix_kinds: relative frequency of ``tts`` / ``tts_builtin`` / ``builtin`` mixtures.
        noise_snr_db: None, or ``[low, high]``: add noise at an SNR drawn in this range.
        noise_types: noise colours to draw from (``white``, ``pink``, ``brown``).
        close_pitch: share of the ``tts`` mixtures whose other talkers are drawn within
            ``close_semitones`` of the first talker's F0 (0: talkers drawn independently).
        close_semitones: how close, in semitones of median F0.
        pool: settings of the pool (:class:`~audionets.data.speech_pool.PoolSettings` fields)
            to build when missing; a pool in ``root`` made with other settings is an error.
            None uses whatever finished pool ``root`` holds.
        seed: fixes the valid/test mixtures.
        auto_prepare: build the pool when ``root`` has none (needs espeak-ng and festival).
    """

    def __init__(
        self,
        root: str | None = None,
        split: str = "train",
        sample_rate: int = 8000,
        segment_seconds: float | None = 4.0,
        num_speakers: int = 2,
        num_mixtures: int | None = None,
        gain_db: Sequence[float] = (0.0, 5.0),
        mix_kinds: Mapping[str, float] | None = None,
        noise_snr_db: Sequence[float] | None = None,
        noise_types: Sequence[str] = ("white", "pink", "brown"),
        close_pitch: float = 0.0,
        close_semitones: float = 2.0,
        pool: Mapping | None = None,
        seed: int = 0,
        auto_prepare: bool = True,
    ) -> None:
        check_choice("data.num_speakers", num_speakers, (2, 3))
        self.split = check_split(split)
        root_path = root_dir(root, "build a pool with audionets prepare-tts-mix PATH")
        rows = self._pool_rows(root_path, pool, auto_prepare)
        rows = [row for row in rows if row["split"] == split]
        by_voice: dict[str, list[Path]] = defaultdict(list)
        for row in rows:
            by_voice[row["voice"]].append(root_path / row["path"])
        self.pool = dict(by_voice)
        self.voices = sorted(by_voice)
        self.close_pitch, self.close_semitones = _check_close_pitch(close_pitch, close_semitones)
        if self.close_pitch > 0:
            self._index_pitch(rows, root_path)
        self.sample_rate = int(sample_rate)
        self.segment = segment_length(segment_seconds, self.sample_rate)
        self.num_speakers = self.num_sources = int(num_speakers)
        self.length = example_count(num_mixtures, _DEFAULT_MIXTURES, split)
        self.gain_db = check_gain_range(gain_db)
        self.mix_kinds = _check_mix_kinds({"tts": 1.0} if mix_kinds is None else mix_kinds)
        if self.mix_kinds.get("tts", 0) > 0 and len(self.voices) < self.num_speakers:
            raise ConfigError(
                f"data.root: the {split} split of {root_path} has {len(self.voices)} voices, need "
                f"{self.num_speakers}; build a bigger pool (data.pool.num_utterances)")
        self.noise_snr_db = None if noise_snr_db is None else check_gain_range(noise_snr_db)
        for kind in noise_types:
            check_choice("data.noise_types", kind, tuple(NOISE_EXPONENTS))
        self.noise_types = tuple(noise_types)
        self.talkers = speaker_pool(split, seed)
        self.seed = int(seed)
        check_files_exist((path for files in self.pool.values() for path in files), split)

    def _pool_rows(self, root: Path, pool: Mapping | None, auto_prepare: bool) -> list[dict]:
        manifest = root / "manifest.csv"
        if pool is not None:
            try:
                settings = speech_pool.PoolSettings(**{
                    k: tuple(v) if k == "engines" else v for k, v in pool.items()})
            except TypeError as err:
                raise ConfigError(f"data.pool: {err}") from None
        if not manifest.exists():
            if not auto_prepare:
                raise ConfigError(
                    f"data.root: {root} has no manifest.csv; build the pool with audionets "
                    f"prepare-tts-mix {root} or set data.auto_prepare=true")
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # every process would build it
                raise ConfigError(
                    f"data.root: {root} has no manifest.csv; with torchrun build the pool "
                    f"first: audionets prepare-tts-mix {root}")
            speech_pool.build(root, speech_pool.PoolSettings() if pool is None else settings)
        elif pool is not None:
            speech_pool.check_settings(root, settings)
        return speech_pool.read_manifest(root)

    def _index_pitch(self, rows: list[dict], root: Path) -> None:
        """The split's utterances sorted by F0 in semitones, for :meth:`_close_partners`."""
        speech_pool.check_f0_column(rows, root, "data.close_pitch")
        semitones = np.array([12 * np.log2(max(float(r["f0_hz"]), 1.0)) for r in rows])
        order = np.argsort(semitones, kind="stable")
        self._semitones = semitones[order]
        self._by_pitch = [(rows[i]["voice"], root / rows[i]["path"]) for i in order]
        self._pitch_of = {path: tone for (_, path), tone in zip(self._by_pitch, self._semitones)}

    def __len__(self) -> int:
        return self.length

    def _generator(self, index: int) -> torch.Generator | None:
        if self.split == "train":
            return None  # the global RNG, seeded per item by the trainer
        code = ("train", "valid", "test").index(self.split)
        return torch.Generator().manual_seed(self.seed * 1_000_003 + index * 3 + code)

    def _kind(self, generator: torch.Generator | None) -> str:
        kinds = [k for k in MIX_KINDS if self.mix_kinds.get(k, 0) > 0]
        weights = torch.tensor([self.mix_kinds[k] for k in kinds], dtype=torch.float64)
        return kinds[int(torch.multinomial(weights, 1, generator=generator))]

    def _tts(self, count: int, generator: torch.Generator | None) -> list[tuple[str, torch.Tensor]]:
        picks = torch.randperm(len(self.voices), generator=generator)[:count].tolist()
        paths = []
        for pick in picks:
            files = self.pool[self.voices[pick]]
            paths.append(files[int(torch.randint(len(files), (), generator=generator))])
        # drawn only when asked for: the valid/test mixtures of close_pitch=0 stay as they were
        if count > 1 and self.close_pitch > 0 and uniform(0.0, 1.0, generator) < self.close_pitch:
            paths[1:] = self._close_partners(self.voices[picks[0]], paths[0], count - 1,
                                             generator) or paths[1:]
        return [(path.stem, load_mono(path, self.sample_rate)) for path in paths]

    def _close_partners(self, voice: str, path: Path, count: int,
                        generator: torch.Generator | None) -> list[Path]:
        """``count`` utterances of other, distinct voices within ``close_semitones`` of the
        F0 of ``path`` (spoken by ``voice``); [] when the split has too few."""
        tone = self._pitch_of[path]
        low, high = np.searchsorted(self._semitones, [tone - self.close_semitones,
                                                      tone + self.close_semitones + 1e-9])
        voices, partners = {voice}, []
        for offset in torch.randperm(int(high - low), generator=generator).tolist():
            other, other_path = self._by_pitch[low + offset]
            if other not in voices:
                voices.add(other)
                partners.append(other_path)
                if len(partners) == count:
                    return partners
        return []

    def _builtin(self, count: int, generator: torch.Generator | None,
                 ) -> list[tuple[str, torch.Tensor]]:
        picks = torch.randperm(len(self.talkers), generator=generator)[:count].tolist()
        rng = np.random.default_rng(int(torch.randint(2**62, (), generator=generator)))
        out = []
        for pick in picks:
            seconds = uniform(*BUILTIN_SECONDS, generator)
            wav = synthesize_utterance(self.talkers[pick], seconds, self.sample_rate, rng)
            out.append((f"talker{self.talkers[pick].speaker_id}", torch.from_numpy(wav)))
        return out

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        generator = self._generator(index)
        kind = self._kind(generator)
        if kind == "tts":
            parts = self._tts(self.num_speakers, generator)
        elif kind == "builtin":
            parts = self._builtin(self.num_speakers, generator)
        else:
            parts = self._tts(1, generator) + self._builtin(self.num_speakers - 1, generator)
        mix, sources = mix_utterances([wav for _, wav in parts], self.sample_rate, generator,
                                      self.gain_db, self.segment,
                                      crop_randomly=self.split == "train")
        item = {"mix": mix, "sources": sources, "id": "_".join(name for name, _ in parts)}
        if self.noise_snr_db is not None:
            item["mix"] = mix + self._noise(mix, generator)
        return item

    def _noise(self, speech: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        colour = self.noise_types[int(torch.randint(len(self.noise_types), (), generator=generator))]
        noise = colored_noise(speech.shape[-1], NOISE_EXPONENTS[colour], generator)
        snr = uniform(*self.noise_snr_db, generator)
        level = active_rms(speech, self.sample_rate) / max(float(noise.pow(2).mean().sqrt()), 1e-12)
        return noise * level * 10.0 ** (-snr / 20.0)
