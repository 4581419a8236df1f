"""A synthetic Speech Commands: the 35 words of v0.02 spoken by espeak-ng and festival voices.

:func:`build` writes a folder in the **Speech Commands layout** (read by the
``speech_commands`` dataset, so ``recipes/speech_commands`` trains on it unchanged)::

    {root}/<word>/<speaker>_nohash_<n>.wav   1 s, 16 kHz, 16-bit; the word centred in silence
    {root}/validation_list.txt               word/file.wav of the valid voices
    {root}/testing_list.txt                  word/file.wav of the test voices
    {root}/_background_noise_/*.wav          60 s noises: white, pink, brown, hum, babble
    {root}/kws_tts.json                      the settings (the cache key of a resumed build)
    {root}/build.json                        clips, voices per split, failures, build speed

``<speaker>`` is a hash of the voice's name (8 hex digits, as Speech Commands' speaker ids) and
``<n>`` counts that voice's takes of the word. Splits come from
:func:`audionets.data.synthesizers.split_voices`: no language and no variant (or festival
speaker) of a valid or test voice is heard in training. Each take has its own prosody
(pitch, intonation range, rate, warp of pitch and formants) around the voice's own pitch.

Building reuses the speech pool's machinery (:func:`audionets.data.speech_pool.run_jobs`:
worker processes, a progress bar, resumable: a written clip or a ``.failed`` marker is not
redone). The two lists are written last: a folder without them is an unfinished build, which
the ``speech_commands`` dataset refuses. A take the synthesizer could not speak as its word
(it crashed, or spoke a fallback text) is marked failed and left out.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from audionets import audio
from audionets.data import speech_pool, synthesizers
from audionets.data.synthesizers import SPLITS, Prosody, Voice
from audionets.data.transforms import centre_fit, colored_noise, speed_perturb
from audionets.errors import ConfigError
from audionets.utils import atomic_write, check_out_dir, prepare_out_dir

#: The 35 words of Speech Commands v0.02.
WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward",
    "four", "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one",
    "right", "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow",
    "yes", "zero",
)
SAMPLE_RATE = 16000
CLIP_SECONDS = 1.0
#: A word longer than this (after trimming its silence) is sped up to fit, with a margin.
MAX_WORD_SECONDS = 0.96
NOISE_DIR = "_background_noise_"
#: 2: each split draws its voices and prosody from its own generator (valid and test no longer
#: change with the number of training takes).
VERSION = 2


@dataclass(frozen=True)
class WordSetSettings:
    """What a word set is made of; equal settings (and voices) give the same set.

    Attributes:
        per_word: takes of each word in ``train``, ``valid``, ``test`` (each by another voice
            in turn, so a split's voices are used about equally often).
        seed: fixes the voices, prosody and noises.
        engines: synthesizers to use.
        festival_fraction: share of each split's takes spoken by festival voices (when it has
            any: festival has 16 voices against espeak-ng's thousands).
        warp: each take's pitch-and-formant warp is drawn in ``[1 - warp, 1 + warp]``.
        words: the words to speak (Speech Commands' 35 by default).
        noise_seconds: length of each background noise file.
    """

    per_word: tuple[int, int, int] = (300, 30, 60)
    seed: int = 0
    engines: tuple[str, ...] = synthesizers.ENGINES
    festival_fraction: float = 0.1
    warp: float = 0.08
    words: tuple[str, ...] = WORDS
    noise_seconds: int = 60

    def __post_init__(self) -> None:
        if (len(self.per_word) != 3 or not all(isinstance(n, int) and n >= 1
                                                 for n in self.per_word)):
            raise ConfigError(f"per_word: need three integers >= 1 (train valid test), got "
                              f"{self.per_word!r}")
        speech_pool.check_voicing(self.festival_fraction, self.warp)
        if not self.words or any(not w.isalpha() or not w.islower() for w in self.words):
            raise ConfigError(f"words: need lower-case words of letters, got {self.words!r}")
        if not isinstance(self.noise_seconds, int) or self.noise_seconds < 1:
            raise ConfigError(f"noise_seconds: need an integer >= 1, got {self.noise_seconds!r}")

    def key(self) -> dict:
        """The cache key stored in kws_tts.json."""
        return {"version": VERSION, **asdict(self), "per_word": list(self.per_word),
                "engines": list(self.engines), "words": list(self.words)}

    @classmethod
    def from_key(cls, key: dict, where: str) -> WordSetSettings:
        """The settings a :meth:`key` (read from ``where``) was made of."""
        if not isinstance(key, dict) or key.get("version") != VERSION:
            version = key.get("version") if isinstance(key, dict) else None
            raise ConfigError(f"{where}: a word set of version {version}; this audionets "
                              f"makes version {VERSION}: build it again")
        names = {f.name for f in fields(cls)}
        if set(key) - {"version"} != names:
            raise ConfigError(f"{where}: not the settings of a word set (keys "
                              f"{sorted(set(key) - {'version'})}, expected {sorted(names)})")
        return cls(**{name: tuple(value) if isinstance(value, list) else value
                      for name, value in key.items() if name != "version"})


@dataclass(frozen=True)
class Take:
    """One planned clip: ``voice`` speaks ``text`` (the word) with ``prosody`` into ``path``."""

    path: str
    split: str
    voice: Voice
    text: str
    prosody: Prosody


def speaker_id(voice: Voice) -> str:
    """8 hex digits fixed by the voice's name (the ``<speaker>`` of a file name)."""
    return hashlib.sha1(voice.name.encode()).hexdigest()[:8]


def plan(settings: WordSetSettings, voices: list[Voice]) -> list[Take]:
    """The set's takes: a fixed function of ``settings`` and the voice list.

    Voices that speak only numbers (:data:`~audionets.data.synthesizers.NUMBERS_ONLY`) are
    left out. Each split draws from its own generator (seeded by ``seed`` and the split's
    name), so a set with more training takes has the same validation and test takes, and
    models trained on either are scored on the same clips. Within a split, each take picks
    festival with probability ``festival_fraction`` (if the split has festival voices), and
    each engine's voices are taken in turns over a shuffled order, across words
    (:class:`~audionets.data.speech_pool.VoiceTurns`, as the speech pool's).
    """
    usable = [v for v in voices if v.name not in synthesizers.NUMBERS_ONLY]
    by_split = synthesizers.split_voices(usable)
    takes = []
    for split, count in zip(SPLITS, settings.per_word):
        rng = random.Random(f"{settings.seed}/{split}")
        turns = speech_pool.VoiceTurns(split, by_split[split], rng, settings.festival_fraction)
        for word in settings.words:
            seen: dict[str, int] = {}
            for _ in range(count):
                voice = turns.take()
                speaker = speaker_id(voice)
                n = seen[speaker] = seen.get(speaker, -1) + 1
                prosody = synthesizers.random_prosody(
                    rng, speech_pool.voice_base_pitch(voice), settings.warp)
                takes.append(Take(f"{word}/{speaker}_nohash_{n}.wav", split, voice, word,
                                  prosody))
    return takes


def fit_word(wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """A synthesized word ``[T]`` as a Speech Commands clip ``[sample_rate]`` (1 s).

    The leading and trailing silence is trimmed (10 ms frames more than 40 dB below the
    loudest, keeping 20 ms of margin), a word longer than :data:`MAX_WORD_SECONDS` is sped up
    to that length, and the word is centred in the second, at a peak of 0.9.
    """
    length = int(round(CLIP_SECONDS * sample_rate))
    frame = sample_rate // 100
    frames = wav[: wav.shape[-1] // frame * frame].reshape(-1, frame)
    energy = frames.pow(2).mean(dim=-1)
    loud = torch.nonzero(energy > energy.max() * 1e-4).flatten() if len(energy) else energy
    if loud.numel():
        margin = 2 * frame
        wav = wav[max(0, int(loud[0]) * frame - margin): (int(loud[-1]) + 1) * frame + margin]
    longest = int(MAX_WORD_SECONDS * sample_rate)
    if wav.shape[-1] > longest:
        wav = speed_perturb(wav, wav.shape[-1] / longest)[:longest]
    return centre_fit(wav * (0.9 / max(float(wav.abs().max()), 1e-9)), length)


def build(root: str | Path, settings: WordSetSettings = WordSetSettings(), workers: int = 2,
          progress: bool = True) -> Path:
    """Build (or finish building) the word set in ``root``; return ``root``.

    A finished set with the same settings is returned at once; one with other settings is a
    ConfigError (use another folder). An interrupted build continues where it stopped.
    """
    root = check_out_dir(Path(root).expanduser())
    key_file = root / "kws_tts.json"
    lists = [root / "validation_list.txt", root / "testing_list.txt"]
    if key_file.exists():
        check_settings(root, settings)
        if all(p.exists() for p in lists):
            return root
    takes = plan(settings, synthesizers.installed_voices(settings.engines))
    for word in settings.words:
        prepare_out_dir(root / word)
    with atomic_write(key_file) as tmp:  # written first: a resumed build checks it
        tmp.write_text(json.dumps(settings.key()))
    write_noises(root / NOISE_DIR, settings, takes)
    todo = [t for t in takes if not speech_pool.is_done(root / t.path)]
    start = time.perf_counter()
    frames = speech_pool.run_jobs(root, todo, SAMPLE_RATE, workers, progress, len(takes),
                                  finish=fit_word, name="kws words", keep_fallbacks=False)
    elapsed = time.perf_counter() - start
    written = [t for t in takes if (root / t.path).exists()]
    failed = sorted(p for t in takes if (p := (root / t.path).with_suffix(".failed")).exists())
    stats = {
        "clips": {s: sum(t.split == s for t in written) for s in SPLITS},
        "planned": len(takes), "synthesized_now": len(todo),
        "failed": [f"{p.relative_to(root)}: {p.read_text().strip()}" for p in failed],
        "seconds": round(elapsed, 1), "workers": workers,
        "clips_per_second": round(frames / SAMPLE_RATE / CLIP_SECONDS / max(elapsed, 1e-9), 1),
        "voices": {s: len({t.voice.name for t in takes if t.split == s}) for s in SPLITS},
        "languages": {s: sorted({t.voice.language for t in takes if t.split == s})
                      for s in SPLITS},
    }
    with atomic_write(root / "build.json") as tmp:
        tmp.write_text(json.dumps(stats, indent=1))
    for split, path in zip(("valid", "test"), lists):  # written last: they mark a finished set
        with atomic_write(path) as tmp:
            tmp.write_text("".join(f"{t.path}\n" for t in written if t.split == split))
    return root


def clip_voices(root: str | Path) -> dict[str, Take]:
    """The take of every clip of the finished word set in ``root``: ``{"word/file.wav": Take}``
    (its split, voice and prosody), for per-voice figures of an evaluation.

    The plan is made again from the set's ``kws_tts.json`` with this machine's voices, and
    must give the set's validation and test lists: a set made with other voices is a
    ConfigError rather than a wrong attribution.
    """
    root = Path(root).expanduser()
    key_file = root / "kws_tts.json"
    lists = {"valid": root / "validation_list.txt", "test": root / "testing_list.txt"}
    if not key_file.is_file() or not all(p.is_file() for p in lists.values()):
        raise ConfigError(f"{root}: not a finished word set (kws_tts.json and both lists); "
                          "build it with audionets prepare-kws-tts")
    try:
        key = json.loads(key_file.read_text())
    except ValueError:
        raise ConfigError(f"{key_file}: not valid JSON; build the set again") from None
    settings = WordSetSettings.from_key(key, str(key_file))
    takes = {t.path: t for t in plan(settings, synthesizers.installed_voices(settings.engines))}
    for split, path in lists.items():
        listed = path.read_text().split()
        if any(name not in takes or takes[name].split != split for name in listed):
            raise ConfigError(f"{path}: this machine's voices plan another set than {root} "
                              "holds (it was built with other synthesizer voices)")
    return takes


def check_settings(root: Path, settings: WordSetSettings) -> None:
    """ConfigError unless the set in ``root`` was made (or is being made) with ``settings``."""
    made_with = json.loads((root / "kws_tts.json").read_text())
    if made_with != settings.key():
        raise ConfigError(f"{root} holds a word set made with other settings: "
                          f"{speech_pool.settings_difference(made_with, settings.key())}; "
                          "use another folder or delete it")


def write_noises(folder: Path, settings: WordSetSettings, takes: list[Take]) -> None:
    """The ``_background_noise_`` files (``noise_seconds`` each, 16 kHz), like Speech
    Commands' six.

    white / pink / brown noise (:func:`~audionets.data.transforms.colored_noise`), mains
    ``hum`` (50 Hz and its harmonics over faint pink noise) and ``babble`` (eight overlapping
    espeak-ng talkers of the training split reading sentences without keywords or numbers).
    Files already there are kept (a resumed build).
    """
    prepare_out_dir(folder)
    seed = settings.seed
    length = settings.noise_seconds * SAMPLE_RATE
    generator = torch.Generator().manual_seed(seed)
    noises = {"white_noise": 0.0, "pink_noise": 1.0, "brown_noise": 2.0}
    makers = {name: (lambda e=exponent: colored_noise(length, e, generator))
              for name, exponent in noises.items()}
    makers["hum"] = lambda: _hum(length, generator)
    makers["babble"] = lambda: _babble(length, seed, takes, settings.words)
    for name, make in makers.items():  # every noise drawn, so each is the same on a resume
        wav = make()
        path = folder / f"{name}.wav"
        if not path.exists():
            wav = wav * (0.5 / max(float(wav.abs().max()), 1e-9))
            audio.save(path, wav.unsqueeze(0), SAMPLE_RATE, subtype="PCM_16")


def _hum(length: int, generator: torch.Generator) -> torch.Tensor:
    t = np.arange(length) / SAMPLE_RATE
    hum = sum(np.sin(2 * np.pi * 50 * k * t + k) / k for k in range(1, 8))
    return torch.from_numpy(hum.astype(np.float32)) + 0.05 * colored_noise(length, 1.0, generator)


def _babble(length: int, seed: int, takes: list[Take], words: tuple[str, ...]) -> torch.Tensor:
    """Eight training voices each reading sentences end to end, summed ``[length]``."""
    rng = random.Random(seed)
    voices = sorted({t.voice for t in takes if t.split == "train" and t.voice.engine != "festival"},
                    key=lambda v: v.name)
    if not voices:
        return torch.zeros(length)
    out = torch.zeros(length)
    for voice in rng.sample(voices, min(8, len(voices))):
        track, filled = [], 0
        while filled < length:
            text = " ".join(w for w in synthesizers.sentence(rng, "en", 8, 14).split()
                            if w.strip(",.?!").lower() not in words and not w[0].isdigit())
            wav = synthesizers.synthesize(voice, text, SAMPLE_RATE)
            wav = wav / max(float(wav.abs().max()), 1e-9)
            track.append(wav)
            filled += wav.shape[-1]
        out += torch.cat(track)[:length]
    return out
