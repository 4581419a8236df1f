"""Tiny fake copies of the real-dataset layouts, for tests (a few short generated files each).

Every builder writes into ``root`` the folders and metadata files of the real dataset, with
short tones/noise instead of recordings, and returns ``root``. Separation sets are written as
float WAV so that ``mix == sum(sources)`` holds exactly.
"""

from __future__ import annotations

import csv
import functools
import math
import random
from collections.abc import Callable
from pathlib import Path

import soundfile as sf
import torch

SPEECH_COMMANDS_WORDS = (
    "backward bed bird cat dog down eight five follow forward four go happy house learn left "
    "marvin nine no off on one right seven sheila six stop three tree two up visual wow yes zero"
).split()


def tone(seconds: float, rate: int, freq: float, seed: int = 0, noise: float = 0.05) -> torch.Tensor:
    """A sine of ``freq`` Hz plus a little noise: ``[T]`` with ``T = round(seconds * rate)``."""
    n = int(round(seconds * rate))
    t = torch.arange(n, dtype=torch.float64) / rate
    g = torch.Generator().manual_seed(seed)
    wav = 0.3 * torch.sin(2 * math.pi * freq * t) + noise * torch.randn(n, generator=g, dtype=torch.float64)
    return wav.float()


#: ``clip(label, take, seconds, rate) -> wav [T]``: the audio a builder writes for clip
#: ``take`` of class ``label`` (None: the builder's own :func:`tone`)
ClipSource = Callable[[int, int, float, int], torch.Tensor]

#: ten synth_events classes that differ to the ear (no am/fm tones, no speech)
CLEAN_EVENT_CLASSES = ("tone", "chirp_up", "chirp_down", "harmonic", "click_train",
                       "white_noise", "pink_noise", "brown_noise", "impact", "square")


@functools.lru_cache(maxsize=8)
def _clean_events(seconds: float, rate: int):
    from audionets.data.events import SynthEvents

    return SynthEvents(split="train", sample_rate=rate, segment_seconds=seconds,
                       num_examples=13 * 1000, background_snr_db=None, seed=14)


def clean_event(label: int, take: int, seconds: float, rate: int) -> torch.Tensor:
    """A :data:`ClipSource` of clean sound events: take ``take`` of
    ``CLEAN_EVENT_CLASSES[label]`` from ``synth_events`` without background (pitch, onset,
    duration and a 23 dB level range vary from take to take; digital silence around the
    event), ``[round(seconds * rate)]``."""
    events = _clean_events(float(seconds), int(rate))
    return events[events.labels.index(CLEAN_EVENT_CLASSES[label]) + 13 * take]["wav"]


def _write(path: Path, wav: torch.Tensor, rate: int, subtype: str = "PCM_16") -> None:
    """Write ``wav`` ``[T]`` or ``[C, T]`` (plain soundfile: no fsync, fast for many files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav.numpy().T, rate, subtype=subtype)


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def make_esc50(root: Path, num_classes: int = 50, clips_per_fold: int = 1,
               rate: int = 44100, seconds: float = 0.5, clip: ClipSource | None = None) -> Path:
    """ESC-50: ``audio/*.wav`` + ``meta/esc50.csv``; every class in every fold.

    Category names are ``cat_<target>``; odd targets are marked ESC-10; the CSV rows are
    shuffled so that label order must come from ``target``, not from row order. ``clip``
    makes the audio (default: a tone of ``200 + 20 * target`` Hz).
    """
    rows = []
    for target in range(num_classes):
        for fold in range(1, 6):
            for take in range(clips_per_fold):
                name = f"{fold}-{1000 + target}-{take}-{target}.wav"
                wav = (tone(seconds, rate, 200 + 20 * target, fold) if clip is None
                       else clip(target, (fold - 1) * clips_per_fold + take, seconds, rate))
                _write(root / "audio" / name, wav, rate)
                rows.append({"filename": name, "fold": fold, "target": target,
                             "category": f"cat_{target:02d}", "esc10": str(target % 2 == 1),
                             "src_file": 1000 + target, "take": take})
    random.Random(0).shuffle(rows)
    _write_csv(root / "meta" / "esc50.csv", rows)
    return root


def make_urbansound8k(root: Path, num_classes: int = 10, clips_per_fold: int = 1,
                      rates: tuple[int, ...] = (44100, 22050), seconds: float = 0.5,
                      clip: ClipSource | None = None) -> Path:
    """UrbanSound8K: ``audio/fold1..10/*.wav`` (mixed rates, some stereo) + metadata CSV.

    ``clip`` makes the audio (default: a tone of ``300 + 30 * class_id`` Hz)."""
    rows = []
    for class_id in range(num_classes):
        for fold in range(1, 11):
            for take in range(clips_per_fold):
                rate = rates[(class_id + fold) % len(rates)]
                name = f"{100 + class_id}-{class_id}-0-{fold}{take}.wav"
                wav = (tone(seconds, rate, 300 + 30 * class_id, fold) if clip is None
                       else clip(class_id, (fold - 1) * clips_per_fold + take, seconds, rate))
                if fold % 2:
                    wav = torch.stack([wav, wav])  # stereo files exist in UrbanSound8K
                _write(root / "audio" / f"fold{fold}" / name, wav, rate)
                rows.append({"slice_file_name": name, "fsID": 100 + class_id, "start": 0.0,
                             "end": seconds, "salience": 1, "fold": fold,
                             "classID": class_id, "class": f"class_{class_id}"})
    random.Random(1).shuffle(rows)
    _write_csv(root / "metadata" / "UrbanSound8K.csv", rows)
    return root


def make_speech_commands(root: Path, words: tuple[str, ...] | list[str] = SPEECH_COMMANDS_WORDS,
                         clips_per_word: int = 3, rate: int = 16000, seconds: float = 0.5,
                         clip: ClipSource | None = None) -> Path:
    """Speech Commands v0.02: word folders, the two split lists, ``_background_noise_/``.

    Clip ``k`` of each word goes to validation when ``k % 5 == 1``, testing when
    ``k % 5 == 2``, train otherwise (k = 0, 3, 4, 5, 8, ...). ``clip`` makes the audio of word
    ``w`` (default: a tone of ``150 + 10 * w`` Hz).
    """
    valid, test = [], []
    for w, word in enumerate(words):
        for k in range(clips_per_word):
            rel = f"{word}/{w:04x}abcd_nohash_{k}.wav"
            wav = tone(seconds, rate, 150 + 10 * w, k) if clip is None else clip(w, k, seconds, rate)
            _write(root / rel, wav, rate)
            if k % 5 == 1:
                valid.append(rel)
            elif k % 5 == 2:
                test.append(rel)
    (root / "validation_list.txt").write_text("\n".join(valid) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    g = torch.Generator().manual_seed(7)
    for name in ("white_noise", "pink_noise"):
        _write(root / "_background_noise_" / f"{name}.wav", 0.1 * torch.randn(3 * rate, generator=g), rate)
    (root / "_background_noise_" / "README.md").write_text("fake noise\n")
    return root


WSJ0_SPEAKERS = ("01a", "02c", "40b", "22h", "053")


def wsj0_name(index: int, num_speakers: int) -> tuple[str, list[str]]:
    """A WSJ0-mix style name ``<utt1>_<snr1>_<utt2>_<snr2>...`` and its speakers."""
    spk = [WSJ0_SPEAKERS[(index + 2 * k) % len(WSJ0_SPEAKERS)] for k in range(num_speakers)]
    parts = []
    for k, s in enumerate(spk):
        snr = (1.5 if k == 0 else -1.5) * ((index % 3) + 1) / 3
        parts += [f"{s}o{(index * 7 + k) % 100:02d}{'abc'[k]}", f"{snr:.4f}"]
    return "_".join(parts), spk


def _sources(index: int, count: int, rate: int, seconds: float) -> list[torch.Tensor]:
    return [tone(seconds + 0.05 * k, rate, 220 * (k + 1) + 13 * index, index * 10 + k)
            for k in range(count)]


def make_wsj0mix(root: Path, num_speakers: int = 2, rates: tuple[int, ...] = (8000,),
                 modes: tuple[str, ...] = ("min",), per_split: int = 4,
                 seconds: float = 0.5) -> Path:
    """WSJ0-mix: ``wav{8k,16k}/{min,max}/{tr,cv,tt}/{mix,s1..sN}/<name>.wav``."""
    for rate in rates:
        for mode in modes:
            for split in ("tr", "cv", "tt"):
                base = root / f"wav{rate // 1000}k" / mode / split
                for i in range(per_split):
                    name, _ = wsj0_name(i + {"tr": 0, "cv": 100, "tt": 200}[split], num_speakers)
                    srcs = _sources(i, num_speakers, rate, seconds)
                    n = min(s.shape[-1] for s in srcs) if mode == "min" else max(s.shape[-1] for s in srcs)
                    srcs = [torch.nn.functional.pad(s, (0, max(0, n - s.shape[-1])))[:n] for s in srcs]
                    for k, s in enumerate(srcs):
                        _write(base / f"s{k + 1}" / f"{name}.wav", s, rate, "FLOAT")
                    _write(base / "mix" / f"{name}.wav", sum(srcs), rate, "FLOAT")
    return root


def make_wham(root: Path, rates: tuple[int, ...] = (8000,), per_split: int = 3,
              seconds: float = 0.5) -> Path:
    """WHAM!: ``wav8k/min/{tr,cv,tt}/{mix_clean,mix_both,mix_single,s1,s2,noise}/``."""
    for rate in rates:
        for split in ("tr", "cv", "tt"):
            base = root / f"wav{rate // 1000}k" / "min" / split
            for i in range(per_split):
                name, _ = wsj0_name(i, 2)
                s1, s2 = (s[: int(seconds * rate)] for s in _sources(i, 2, rate, seconds))
                noise = 0.05 * torch.randn(s1.shape[-1], generator=torch.Generator().manual_seed(i))
                files = {"s1": s1, "s2": s2, "noise": noise, "mix_clean": s1 + s2,
                         "mix_both": s1 + s2 + noise, "mix_single": s1 + noise}
                for folder, wav in files.items():
                    _write(base / folder / f"{name}.wav", wav, rate, "FLOAT")
    return root


def make_librimix(root: Path, num_speakers: int = 2, rate: int = 8000, mode: str = "min",
                  per_split: int = 3, seconds: float = 0.5,
                  generated_at: str = "/home/someone/LibriMix/data") -> Path:
    """LibriMix: ``Libri{N}Mix/wav8k/min/{metadata,train-360,train-100,dev,test}/...``.

    The metadata CSVs hold absolute paths under ``generated_at`` (as when the data was
    generated on another machine), so readers must relocate them.
    """
    base = root / f"Libri{num_speakers}Mix" / f"wav{rate // 1000}k" / mode
    origin = f"{generated_at}/Libri{num_speakers}Mix/wav{rate // 1000}k/{mode}"
    for subset in ("train-360", "train-100", "dev", "test"):
        tables: dict[str, list[dict]] = {"mix_clean": [], "mix_both": [], "mix_single": []}
        for i in range(per_split):
            mid = f"{19 + i}-198-{i:04d}_{26 + i}-495-{i:04d}"
            srcs = [s[: int(seconds * rate)] for s in _sources(i, num_speakers, rate, seconds)]
            noise = 0.05 * torch.randn(srcs[0].shape[-1], generator=torch.Generator().manual_seed(i))
            files = {f"s{k + 1}": s for k, s in enumerate(srcs)}
            files.update(noise=noise, mix_clean=sum(srcs), mix_both=sum(srcs) + noise,
                         mix_single=srcs[0] + noise)
            for folder, wav in files.items():
                _write(base / subset / folder / f"{mid}.wav", wav, rate, "FLOAT")

            def where(folder: str) -> str:
                return f"{origin}/{subset}/{folder}/{mid}.wav"

            for kind in tables:
                row = {"mixture_ID": mid, "mixture_path": where(kind)}
                count = 1 if kind == "mix_single" else num_speakers
                row.update({f"source_{k + 1}_path": where(f"s{k + 1}") for k in range(count)})
                if kind != "mix_clean":
                    row["noise_path"] = where("noise")
                row["length"] = srcs[0].shape[-1]
                tables[kind].append(row)
        for kind, rows in tables.items():
            _write_csv(base / "metadata" / f"mixture_{subset}_{kind}.csv", rows)
    return root
