"""``tts_mix``: two- or three-talker mixtures of espeak-ng speech, mixed WSJ0-2mix style.

A free stand-in for WSJ0-2mix that anyone can build: :func:`prepare` synthesises a pool of
utterances once with espeak-ng (``apt-get install espeak-ng``) and caches it on disk::

    {root}/wav/<id>.wav      one utterance each (16-bit PCM at the pool's sample rate)
    {root}/manifest.csv      id, path, speaker, pitch, rate, text, num_frames, sample_rate
    {root}/pool.json         the settings the pool was made with (the cache key)

A *speaker* is an espeak-ng voice + variant (``en-us+m3``, ``de+f2``, ...: English accents and
other languages' voices, each with male and female variants) with its own base pitch and
speaking rate; every utterance perturbs both. Sentences are random strings of words from a
small built-in list. Speakers are split into disjoint train / valid / test sets (80/10/10 of a
fixed shuffle), so evaluation is on unseen voices.

The dataset draws ``num_speakers`` utterances of different speakers of its split and mixes
them as :func:`~audionets.data.layouts.mix_utterances` does (unit active level, then each after
the first louder or quieter than the first by 0-5 dB, ``gain_db``), starting together
(mixture as long as the shortest utterance, or cropped/padded to ``segment_seconds``). Train
items are drawn afresh on each access; valid/test items are fixed by ``(seed, index)``.

Run ``audionets prepare-tts-mix OUT_DIR --num-utterances 3000`` to build a pool, or let
the dataset build it (``auto_prepare: true``, the default) on first use.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import tempfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from audionets import audio
from audionets.data.layouts import (
    check_choice, check_files_exist, check_gain_range, check_split, load_mono, mix_utterances,
    root_dir,
)
from audionets.data.transforms import segment_length
from audionets.errors import ConfigError
from audionets.registry import DATASETS
from audionets.utils import atomic_write, check_out_dir, prepare_out_dir

POOL_VERSION = 1
#: espeak-ng base voices: English accents first, then other languages' voices.
LANGUAGES = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
    "en-029", "en-us-nyc", "de", "fr-fr", "es", "it", "nl", "pt", "sv", "pl",
)
#: espeak-ng voice variants (male m1..m7, female f1..f5).
VARIANTS = tuple(f"m{i}" for i in range(1, 8)) + tuple(f"f{i}" for i in range(1, 6))
SPLIT_FRACTIONS = {"train": 0.8, "valid": 0.1, "test": 0.1}
WORDS = (
    "the a one two three four five six seven eight nine ten red green blue yellow black white "
    "house water river mountain city street market garden window table chair paper letter "
    "morning evening night summer winter spring autumn rain snow wind sun moon star cloud "
    "quick slow bright dark happy quiet loud early late small large old new warm cold "
    "walk run read write speak listen open close bring carry find keep leave meet move "
    "play show start stop think turn wait watch work travel music story answer question "
    "number people family friend teacher doctor student children village island forest "
    "bridge station train bicycle engine machine computer network signal picture "
    "orange purple silver golden heavy light gentle simple careful strong "
    "always never often today tomorrow yesterday here there again together before after"
).split()
MANIFEST_COLUMNS = ("id", "path", "speaker", "pitch", "rate", "text", "num_frames", "sample_rate")


def espeak_binary() -> str | None:
    """Path of the ``espeak-ng`` executable, or None when it is not installed."""
    return shutil.which("espeak-ng")


def available_languages(binary: str) -> set[str]:
    """Language codes of the voices this espeak-ng installation has."""
    out = subprocess.run([binary, "--voices"], capture_output=True, text=True, check=True).stdout
    return {line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1}


def speakers(binary: str) -> list[str]:
    """Every ``language+variant`` speaker of :data:`LANGUAGES` x :data:`VARIANTS` installed."""
    have = available_languages(binary)
    return [f"{lang}+{variant}" for lang in LANGUAGES if lang in have for variant in VARIANTS]


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10)))


def _synthesize(binary: str, voice: str, pitch: int, rate: int, text: str, out: Path,
                sample_rate: int) -> int:
    """Speak ``text`` with espeak-ng into ``out`` at ``sample_rate``; return its frames."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        result = subprocess.run(
            [binary, "-v", voice, "-p", str(pitch), "-s", str(rate), "-w", str(raw), text],
            capture_output=True, text=True,
        )
        if result.returncode != 0 or not raw.exists():
            raise ConfigError(f"espeak-ng -v {voice} failed: {result.stderr.strip()[:200]}")
        wav, _ = audio.load(raw, sample_rate=sample_rate, mono=True)
    audio.save(out, wav, sample_rate)
    return int(wav.shape[-1])


def prepare(out_dir: str | Path, num_utterances: int = 3000, seed: int = 0,
            sample_rate: int = 16000, workers: int = 4) -> Path:
    """Synthesise the utterance pool into ``out_dir`` (once) and return its manifest path.

    A second call with the same settings returns at once (the pool is cached); a call with
    other settings on the same folder raises ConfigError. Needs the ``espeak-ng`` program; the
    speakers are the :data:`LANGUAGES` x :data:`VARIANTS` voices it has installed, so pools
    built with other espeak-ng versions or voice sets differ.
    """
    out_dir = check_out_dir(Path(out_dir).expanduser())
    settings = {"version": POOL_VERSION, "num_utterances": int(num_utterances), "seed": int(seed),
                "sample_rate": int(sample_rate)}
    manifest, key_file = out_dir / "manifest.csv", out_dir / "pool.json"
    if manifest.exists() and key_file.exists():
        made_with = json.loads(key_file.read_text())
        if made_with != settings:
            raise ConfigError(
                f"data.root: {out_dir} holds a tts_mix pool made with {made_with}, not "
                f"{settings}; use another folder or delete it"
            )
        return manifest
    binary = espeak_binary()
    if binary is None:
        raise ConfigError("tts_mix needs the espeak-ng program: apt-get install -y espeak-ng")
    voices = speakers(binary)
    if len(voices) < 3:
        raise ConfigError(f"espeak-ng at {binary} has too few voices ({len(voices)}) for tts_mix")
    rng = random.Random(seed)
    style = {v: (rng.randint(30, 70), rng.randint(140, 190)) for v in voices}
    order = voices[:]
    rng.shuffle(order)
    jobs = []
    for i in range(int(num_utterances)):
        voice = order[i % len(order)]
        base_pitch, base_rate = style[voice]
        pitch = min(99, max(0, base_pitch + rng.randint(-8, 8)))
        rate = base_rate + rng.randint(-15, 15)
        jobs.append((f"{i:06d}", voice, pitch, rate, _sentence(rng)))
    prepare_out_dir(out_dir / "wav")

    def run(job: tuple[str, str, int, int, str]) -> dict:
        uid, voice, pitch, rate, text = job
        path = out_dir / "wav" / f"{uid}.wav"
        frames = _synthesize(binary, voice, pitch, rate, text, path, sample_rate)
        return {"id": uid, "path": f"wav/{uid}.wav", "speaker": voice, "pitch": pitch,
                "rate": rate, "text": text, "num_frames": frames, "sample_rate": sample_rate}

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = list(pool.map(run, jobs))
    with atomic_write(key_file) as tmp:
        tmp.write_text(json.dumps(settings))
    with atomic_write(manifest) as tmp:  # written last: its presence marks a finished pool
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return manifest


def split_speakers(names: Sequence[str], fractions: dict[str, float] = SPLIT_FRACTIONS,
                   minimum: int = 1) -> dict[str, list[str]]:
    """Disjoint train/valid/test speaker sets: a shuffle fixed by the names, cut by fractions.

    valid and test get at least ``minimum`` speakers each (so small pools still have them).
    """
    order = sorted(names, key=lambda n: hashlib.sha1(n.encode()).hexdigest())
    n = len(order)
    n_valid = max(minimum, math.floor(fractions["valid"] * n))
    n_test = max(minimum, math.floor(fractions["test"] * n))
    return {"valid": order[:n_valid], "test": order[n_valid:n_valid + n_test],
            "train": order[n_valid + n_test:]}


@DATASETS.register("tts_mix")
class TTSMix(Dataset):
    """Mixtures of espeak-ng speakers: ``{"mix": [T], "sources": [S, T], "id": str}``.

    Args:
        root: the pool folder (built by :func:`prepare` if missing and ``auto_prepare`` is true).
        split: ``"train"``, ``"valid"`` or ``"test"`` (disjoint speaker sets).
        sample_rate: mixtures are made at this rate.
        segment_seconds: crop/pad length; None keeps "min" mode full length.
        num_speakers: talkers per mixture (2 or 3).
        num_mixtures: items per epoch in train; valid/test have ``num_mixtures // 10``
            (at least 1).
        gain_db: ``[low, high]`` dB, the level difference of each source after the first to
            the first (random sign).
        num_utterances: pool size when the pool is built.
        pool_seed: seed of the pool when it is built.
        seed: fixes the valid/test mixtures.
        auto_prepare: build the pool when ``root`` has none (needs espeak-ng).
    """

    def __init__(
        self,
        root: str | None = None,
        split: str = "train",
        sample_rate: int = 8000,
        segment_seconds: float | None = 3.0,
        num_speakers: int = 2,
        num_mixtures: int = 10000,
        gain_db: Sequence[float] = (0.0, 5.0),
        num_utterances: int = 3000,
        pool_seed: int = 0,
        seed: int = 0,
        auto_prepare: bool = True,
    ) -> None:
        check_choice("data.num_speakers", num_speakers, (2, 3))
        self.split = check_split(split)
        root_path = root_dir(root, "build a pool with audionets prepare-tts-mix PATH")
        manifest = root_path / "manifest.csv"
        if not manifest.exists():
            if not auto_prepare:
                raise ConfigError(
                    f"data.root: {root_path} has no manifest.csv; build the pool with "
                    f"audionets prepare-tts-mix {root_path} or set data.auto_prepare=true"
                )
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # every process would build it
                raise ConfigError(
                    f"data.root: {root_path} has no manifest.csv; with torchrun build the pool "
                    f"first: audionets prepare-tts-mix {root_path} --num-utterances "
                    f"{num_utterances} --seed {pool_seed}"
                )
            manifest = prepare(root_path, num_utterances, pool_seed)
        with open(manifest, newline="") as handle:
            rows = list(csv.DictReader(handle))
        by_speaker: dict[str, list[Path]] = defaultdict(list)
        for row in rows:
            by_speaker[row["speaker"]].append(root_path / row["path"])
        chosen = split_speakers(list(by_speaker))[split]
        if len(chosen) < num_speakers:
            raise ConfigError(
                f"data.root: the {split} split of {root_path} has {len(chosen)} speakers, need "
                f"{num_speakers}; build a bigger pool (data.num_utterances)"
            )
        self.pool = {s: by_speaker[s] for s in chosen}
        self.speakers = sorted(chosen)
        self.sample_rate = int(sample_rate)
        self.segment = segment_length(segment_seconds, self.sample_rate)
        check_files_exist((path for files in self.pool.values() for path in files), split)
        self.num_speakers = self.num_sources = num_speakers
        self.length = num_mixtures if split == "train" else max(1, num_mixtures // 10)
        self.gain_db = check_gain_range(gain_db)
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        generator = None
        if self.split != "train":
            generator = torch.Generator().manual_seed(
                self.seed * 1_000_003 + index * 3 + ("train", "valid", "test").index(self.split))
        picks = torch.randperm(len(self.speakers), generator=generator)[: self.num_speakers]
        paths = []
        for pick in picks.tolist():
            files = self.pool[self.speakers[pick]]
            paths.append(files[int(torch.randint(len(files), (), generator=generator))])
        utterances = [load_mono(p, self.sample_rate) for p in paths]
        mix, sources = mix_utterances(utterances, self.sample_rate, generator, self.gain_db,
                                      self.segment, crop_randomly=self.split == "train")
        return {"mix": mix, "sources": sources, "id": "_".join(p.stem for p in paths)}
