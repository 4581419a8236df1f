"""A cached pool of synthesized utterances, split by voice: the speech behind ``tts_mix``.

:func:`plan` turns the pool's settings into a fixed list of :class:`Utterance` jobs (voice,
text, prosody, split), and :func:`build` synthesizes them in parallel processes into::

    {root}/wav/<split>/<id>.wav   one utterance each, 16-bit PCM at the pool's sample rate
    {root}/manifest.csv           id, path, split, engine, voice, language, variant, pitch,
                                  pitch_range, rate, word_gap, warp, text, num_frames,
                                  sample_rate, f0_hz (the utterance's median F0, measured)
    {root}/pool.json              the settings the pool was made with (the cache key)
    {root}/build.json             how long it took (real-time factor), voices per split

Building is resumable: the plan depends only on the settings and the installed voices, each
WAV is written atomically, and a rerun synthesizes only the utterances whose file is missing.
A text a synthesizer fails on is spoken as numbers instead; an utterance it cannot speak at
all (espeak-ng 1.51's ``kl+edward`` crashes on any text with numbers) leaves a ``.failed`` file
with the reason, is not retried, is left out of the manifest and is listed in build.json.
The manifest is written last: its presence marks a finished pool (building again a pool made
before the ``f0_hz`` column adds the column in place, audio untouched). Splits follow
:func:`audionets.data.synthesizers.split_voices` (no language or variant of a valid/test voice
is heard in training); ``split_fractions`` sets how many utterances each split gets.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from audionets import audio
from audionets.data import synthesizers
from audionets.data.synthesizers import SPLITS, Prosody, Voice
from audionets.errors import ConfigError
from audionets.utils import atomic_write, check_out_dir, prepare_out_dir, progress_bar

if TYPE_CHECKING:
    import torch

POOL_VERSION = 2
#: Utterances per split: most for training, enough held-out voices for a stable test score.
UTTERANCE_FRACTIONS = {"train": 0.9, "valid": 0.05, "test": 0.05}
MANIFEST_COLUMNS = ("id", "path", "split", "engine", "voice", "language", "variant", "pitch",
                    "pitch_range", "rate", "word_gap", "warp", "text", "num_frames",
                    "sample_rate", "f0_hz")
#: Jobs per worker task: one festival start-up (or one process hand-off) per batch.
BATCH = 16


def check_voicing(festival_fraction: float, warp: float) -> None:
    """ConfigError for a festival share outside [0, 1] or a warp outside [0, 0.5): the
    settings of how utterances are voiced, shared with :mod:`audionets.data.kws_tts`."""
    if not 0.0 <= festival_fraction <= 1.0:
        raise ConfigError(f"festival_fraction: need a value in [0, 1], got "
                          f"{festival_fraction!r}")
    if not 0.0 <= warp < 0.5:
        raise ConfigError(f"warp: need a value in [0, 0.5), got {warp!r}")


@dataclass(frozen=True)
class PoolSettings:
    """What a pool is made of; two pools with equal settings (and voices) are the same.

    Attributes:
        num_utterances: utterances in the pool (over all splits).
        seed: fixes voices, texts and prosody of every utterance.
        sample_rate: Hz of the stored WAVs (the separator's rate: 8000).
        engines: synthesizers to use (``"espeak-ng"``, ``"festival"``).
        festival_fraction: share of each split's utterances spoken by festival voices (when
            the split has any; festival has 16 voices against espeak-ng's thousands).
        warp: the resampling factor of each utterance is drawn in ``[1 - warp, 1 + warp]``.
    """

    num_utterances: int = 12000
    seed: int = 0
    sample_rate: int = 8000
    engines: tuple[str, ...] = synthesizers.ENGINES
    festival_fraction: float = 0.2
    warp: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.num_utterances, int) or self.num_utterances < len(SPLITS):
            raise ConfigError(f"num_utterances: need an integer >= 3, got {self.num_utterances!r}")
        if not isinstance(self.sample_rate, int) or not 4000 <= self.sample_rate <= 48000:
            raise ConfigError(f"sample_rate: need an integer in [4000, 48000] Hz, got "
                              f"{self.sample_rate!r}")
        check_voicing(self.festival_fraction, self.warp)

    def key(self) -> dict:
        """The cache key stored in pool.json."""
        return {"version": POOL_VERSION, **asdict(self), "engines": list(self.engines)}


@dataclass(frozen=True)
class Utterance:
    """One planned utterance of the pool."""

    id: str
    split: str
    voice: Voice
    text: str
    prosody: Prosody

    @property
    def path(self) -> str:
        return f"wav/{self.split}/{self.id}.wav"


def voice_base_pitch(voice: Voice) -> int:
    """The voice's own espeak-ng pitch (20-80), fixed by its name: utterances vary around it."""
    seed = int(hashlib.sha1(voice.name.encode()).hexdigest()[:12], 16)
    return random.Random(seed).randint(20, 80)


class VoiceTurns:
    """The voices of one split, each engine's taken in turns over a shuffled order: every voice
    is used about equally often, and a small plan still has as many distinct voices as it can.

    :meth:`take` picks a festival voice with probability ``festival_fraction`` (always when the
    split has only festival voices), else an espeak-ng one. The shuffles and picks draw from
    ``rng``, the plan's own generator, so a plan stays a fixed function of its seed.
    """

    def __init__(self, split: str, voices: list[Voice], rng: random.Random,
                 festival_fraction: float) -> None:
        self.festival = [v for v in voices if v.engine == "festival"]
        self.espeak = [v for v in voices if v.engine != "festival"]
        if not self.festival and not self.espeak:
            raise ConfigError(f"the {split} split has no voices; install more synthesizer "
                              f"voices (apt-get install -y espeak-ng)")
        rng.shuffle(self.festival)
        rng.shuffle(self.espeak)
        self.rng, self.festival_fraction = rng, festival_fraction
        self.turns = {"festival": 0, "espeak-ng": 0}

    def take(self) -> Voice:
        """The next voice."""
        use_festival = bool(self.festival) and (
            not self.espeak or self.rng.random() < self.festival_fraction)
        engine, voices = ("festival", self.festival) if use_festival else ("espeak-ng", self.espeak)
        voice = voices[self.turns[engine] % len(voices)]
        self.turns[engine] += 1
        return voice


def plan(settings: PoolSettings, voices: list[Voice]) -> list[Utterance]:
    """The pool's utterances: a fixed function of ``settings`` and the voice list.

    Each split gets its share of :data:`UTTERANCE_FRACTIONS`; an utterance picks a festival
    voice with probability ``festival_fraction`` (if the split has one), else an espeak-ng
    voice, taking each engine's voices in turns (:class:`VoiceTurns`). A voice keeps its own
    base pitch (drawn from its name) and every utterance varies pitch, range, rate, word gap
    and warp around it.
    """
    by_split = synthesizers.split_voices(voices)
    rng = random.Random(settings.seed)
    counts = {s: max(1, round(settings.num_utterances * UTTERANCE_FRACTIONS[s])) for s in SPLITS}
    counts["train"] = settings.num_utterances - counts["valid"] - counts["test"]
    jobs = []
    for split in SPLITS:
        turns = VoiceTurns(split, by_split[split], rng, settings.festival_fraction)
        for index in range(counts[split]):
            voice = turns.take()
            base_pitch = voice_base_pitch(voice)
            jobs.append(Utterance(
                id=f"{split}-{index:06d}", split=split, voice=voice,
                text=synthesizers.voice_sentence(rng, voice),
                prosody=synthesizers.random_prosody(rng, base_pitch, settings.warp),
            ))
    return jobs


def peak_normalize(wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """The pool's finish: peak 0.9, full use of the 16 bits without clipping (mixing sets the
    levels later)."""
    return wav * (0.9 / max(float(wav.abs().max()), 1e-9))


def _synthesize_batch(root: str, jobs: list[Utterance], sample_rate: int,
                      finish: Callable = peak_normalize, keep_fallbacks: bool = True) -> int:
    """Worker: speak ``jobs`` into their files; return the frames written.

    A job is anything with ``voice``, ``text``, ``prosody`` and ``path`` (relative to
    ``root``); ``finish(wav [T], sample_rate) -> [T']`` shapes each waveform before it is
    saved (a module-level function: it is sent to the worker processes). With
    ``keep_fallbacks`` False, a job the synthesizer spoke as another text (a fallback) is
    marked failed instead (a word set needs the word itself).

    Consecutive jobs of one voice are spoken together (one festival start-up). An utterance
    its synthesizer cannot speak at all leaves a ``.failed`` file with the reason instead of a
    WAV, so that a resumed build does not try it again and the manifest leaves it out.
    """
    import torch

    torch.set_num_threads(1)
    frames = 0
    for group in _by_voice(jobs):
        try:
            spoken = synthesizers.synthesize_many(group[0].voice,
                                                  [(j.text, j.prosody) for j in group], sample_rate)
        except ConfigError:
            if len(group) == 1:
                _mark_failed(Path(root) / group[0].path, sys.exc_info()[1])
                continue
            frames += sum(_synthesize_batch(root, [job], sample_rate, finish, keep_fallbacks)
                          for job in group)
            continue
        for job, (wav, text) in zip(group, spoken):
            path = Path(root) / job.path
            if text != job.text and not keep_fallbacks:
                _mark_failed(path, ConfigError(f"{job.voice.name} spoke {text!r} instead"))
                continue
            if text != job.text:  # a fallback text: the manifest must say what was spoken
                with atomic_write(path.with_suffix(".txt")) as tmp:
                    tmp.write_text(text)
            wav = finish(wav, sample_rate)
            audio.save(path, wav.unsqueeze(0), sample_rate, subtype="PCM_16")
            frames += int(wav.shape[-1])
    return frames


def _by_voice(jobs: list[Utterance]) -> list[list[Utterance]]:
    groups: list[list[Utterance]] = []
    for job in jobs:
        if groups and groups[-1][0].voice == job.voice:
            groups[-1].append(job)
        else:
            groups.append([job])
    return groups


def _mark_failed(path: Path, err: BaseException | None) -> None:
    with atomic_write(path.with_suffix(".failed")) as tmp:
        tmp.write_text(f"{err}\n")


def _batches(jobs: list[Utterance]) -> list[list[Utterance]]:
    """Festival jobs grouped by split and voice (one start-up per batch), espeak-ng by split."""
    groups: dict[tuple[str, str], list[Utterance]] = {}
    for job in jobs:
        key = (job.split, job.voice.name if job.voice.engine == "festival" else "espeak-ng")
        groups.setdefault(key, []).append(job)
    batches = []
    for group in groups.values():
        batches += [group[i:i + BATCH] for i in range(0, len(group), BATCH)]
    # the small held-out splits first (a partial pool can already be evaluated on), and
    # festival's slow batches before espeak-ng's so that they do not finish last, alone
    order = {"test": 0, "valid": 1, "train": 2}
    return sorted(batches, key=lambda b: (order[b[0].split], b[0].voice.engine != "festival"))


def build(root: str | Path, settings: PoolSettings = PoolSettings(), workers: int = 2,
          progress: bool = True) -> Path:
    """Build (or finish building) the pool in ``root``; return its manifest path.

    A finished pool with the same settings is returned at once; one with other settings is a
    ConfigError (use another folder). An interrupted build continues where it stopped.
    """
    root = check_out_dir(Path(root).expanduser())
    manifest, key_file = root / "manifest.csv", root / "pool.json"
    if key_file.exists():
        check_settings(root, settings)
        if manifest.exists():
            rows = read_manifest(root)
            if rows and "f0_hz" not in rows[0]:  # a pool made before the column: add it
                _write_manifest(manifest, _with_f0(root, rows, workers, progress))
            return manifest
    voices = synthesizers.installed_voices(settings.engines)
    jobs = plan(settings, voices)
    for split in SPLITS:
        prepare_out_dir(root / "wav" / split)
    with atomic_write(key_file) as tmp:  # written first: a resumed build checks it
        tmp.write_text(json.dumps(settings.key()))
    todo = [job for job in jobs if not is_done(root / job.path)]
    start = time.perf_counter()
    frames = run_jobs(root, todo, settings.sample_rate, workers, progress, len(jobs))
    elapsed = time.perf_counter() - start
    rows = [_row(root, job, settings.sample_rate) for job in jobs if (root / job.path).exists()]
    rows = _with_f0(root, rows, workers, progress)
    failed = sorted((root / "wav").glob("*/*.failed"))
    stats = {
        "utterances": len(rows), "planned": len(jobs), "synthesized_now": len(todo),
        "failed": [f"{p.stem}: {p.read_text().strip()}" for p in failed],
        "hours": round(sum(r["num_frames"] for r in rows) / settings.sample_rate / 3600, 3),
        "seconds": round(elapsed, 1), "workers": workers,
        "real_time_factor": round(frames / settings.sample_rate / max(elapsed, 1e-9), 1),
        "voices": {s: len({j.voice.name for j in jobs if j.split == s}) for s in SPLITS},
        "languages": {s: sorted({j.voice.language for j in jobs if j.split == s}) for s in SPLITS},
    }
    with atomic_write(root / "build.json") as tmp:
        tmp.write_text(json.dumps(stats, indent=1))
    _write_manifest(manifest, rows)  # written last: its presence marks a finished pool
    return manifest


def _write_manifest(manifest: Path, rows: list[dict]) -> None:
    with atomic_write(manifest) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


def check_f0_column(rows: list[dict], root: Path, where: str) -> None:
    """ConfigError naming ``where`` unless the manifest ``rows`` of the pool in ``root`` hold
    ``f0_hz`` (pools built before the column get it from ``prepare-tts-mix``)."""
    if rows and "f0_hz" not in rows[0]:
        raise ConfigError(f"{where}: the pool in {root} has no f0_hz column (built by an earlier "
                          f"audionets); add it with audionets prepare-tts-mix {root} (the audio "
                          f"is kept)")


def median_f0(wav: torch.Tensor, sample_rate: int) -> float:
    """One pitch for a whole utterance ``wav`` [T]: the median of torchaudio's frame F0
    estimates (``detect_pitch_frequency``, 60-400 Hz), in Hz. The median shrugs off the
    unvoiced frames and octave slips that a mean would follow."""
    import torchaudio

    pitch = torchaudio.functional.detect_pitch_frequency(wav, sample_rate, freq_low=60,
                                                         freq_high=400)
    return float(pitch.median())


def _files_f0(paths: list[Path]) -> list[float]:
    """Worker: :func:`median_f0` of each audio file."""
    import torch

    torch.set_num_threads(1)
    out = []
    for path in paths:
        wav, rate = audio.load(path, mono=True)
        out.append(median_f0(wav[0], rate))
    return out


def _with_f0(root: Path, rows: list[dict], workers: int, progress: bool) -> list[dict]:
    """``rows`` with ``f0_hz`` measured on their files (about 50 utterances/s per worker)."""
    chunks = [rows[i:i + 256] for i in range(0, len(rows), 256)]
    bar = progress_bar(len(rows), "pitch (F0)", progress, unit="utt")
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(_files_f0, [root / r["path"] for r in chunk]): chunk
                   for chunk in chunks}
        for future in as_completed(futures):
            for row, f0 in zip(futures[future], future.result()):
                row["f0_hz"] = round(f0, 1)
            bar.update(len(futures[future]))
    bar.close()
    return rows


def is_done(path: Path) -> bool:
    """Whether a job's file is written or marked failed (a resumed build skips it)."""
    return path.exists() or path.with_suffix(".failed").exists()


def run_jobs(root: Path, jobs: list[Utterance], sample_rate: int, workers: int, progress: bool,
             total: int, finish: Callable = peak_normalize, name: str = "speech pool",
             keep_fallbacks: bool = True) -> int:
    """Synthesize ``jobs`` with ``workers`` processes and a progress bar named ``name``
    (counting from ``total - len(jobs)``: the jobs done before); return frames written.
    ``finish`` and ``keep_fallbacks``: see :func:`_synthesize_batch`."""
    bar = progress_bar(total, name, progress, unit="utt", initial=total - len(jobs),
                       smoothing=0.05)
    frames = 0
    batches = _batches(jobs)
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        # at most 2 batches in flight per worker: an interrupt loses little queued work
        pending, queue = set(), iter(batches)
        sizes = {}
        while True:
            while len(pending) < 2 * max(1, workers):
                batch = next(queue, None)
                if batch is None:
                    break
                future = pool.submit(_synthesize_batch, str(root), batch, sample_rate, finish,
                                     keep_fallbacks)
                sizes[future] = len(batch)
                pending.add(future)
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                frames += future.result()
                bar.update(sizes.pop(future))
    bar.close()
    return frames


def _row(root: Path, job: Utterance, sample_rate: int) -> dict:
    return {
        "id": job.id, "path": job.path, "split": job.split, "engine": job.voice.engine,
        "voice": job.voice.name, "language": job.voice.language, "variant": job.voice.variant,
        **asdict(job.prosody), "text": _spoken_text(root, job),
        "num_frames": audio.info(root / job.path).num_frames, "sample_rate": sample_rate,
    }


def _spoken_text(root: Path, job: Utterance) -> str:
    replaced = (root / job.path).with_suffix(".txt")
    return replaced.read_text() if replaced.exists() else job.text


def settings_difference(made_with: object, wanted: dict) -> str:
    """What a folder's stored settings key ``made_with`` has other than ``wanted``, for an
    error message: ``"per_word [2, 1, 1] (asked: [3, 1, 1]), other words"`` (a list of more
    than eight items is named, not printed); ``"none recorded"`` when there is no key."""
    if not isinstance(made_with, dict):
        return "none recorded"
    parts = []
    for key in sorted(set(made_with) | set(wanted)):
        stored, asked = made_with.get(key), wanted.get(key)
        if stored == asked:
            continue
        long = any(isinstance(v, list) and len(v) > 8 for v in (stored, asked))
        parts.append(f"other {key}" if long else f"{key} {stored!r} (asked: {asked!r})")
    return ", ".join(parts)


def check_settings(root: Path, settings: PoolSettings) -> None:
    """ConfigError unless the pool in ``root`` was made (or is being made) with ``settings``."""
    key_file = root / "pool.json"
    made_with = json.loads(key_file.read_text()) if key_file.exists() else None
    if made_with != settings.key():
        raise ConfigError(f"data.root: {root} holds a speech pool made with other settings: "
                          f"{settings_difference(made_with, settings.key())}; use another "
                          f"folder, delete it, or set data.pool to its settings (data.pool=null "
                          f"takes any finished pool)")


def read_manifest(root: str | Path) -> list[dict]:
    """The rows of a finished pool's manifest (ConfigError naming ``data.root`` if none)."""
    manifest = Path(root).expanduser() / "manifest.csv"
    if not manifest.exists():
        raise ConfigError(f"data.root: {manifest.parent} has no speech pool (manifest.csv); "
                          f"build it with audionets prepare-tts-mix {manifest.parent}")
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and "split" not in rows[0]:
        raise ConfigError(f"data.root: {manifest.parent} holds a pool from an earlier audionets "
                          f"(no voice splits); delete it and build it again")
    return rows
