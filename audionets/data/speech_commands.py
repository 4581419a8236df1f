"""Google Speech Commands v0.02: one-second spoken words, 35 words (or the 12-class task).

Layout (the extracted ``speech_commands_v0.02.tar.gz``)::

    {root}/<word>/<speaker>_nohash_<n>.wav     one folder per word, 16 kHz, <= 1 s
    {root}/validation_list.txt                 paths relative to root, one per line
    {root}/testing_list.txt
    {root}/_background_noise_/*.wav            six long noise recordings

Splits: ``valid`` and ``test`` are the files in the two lists; ``train`` is every other word
file. Tasks:

- ``task="35"``: one class per word folder (35 in v0.02), sorted alphabetically.
- ``task="12"``: ``yes no up down left right on off stop go`` + ``_unknown_`` (every other
  word) + ``_silence_``. As in TensorFlow's reference training script, each split gets
  ``silence_fraction`` x (number of target-word clips) silence items and at most
  ``unknown_fraction`` x that many unknown-word clips (a fixed random subset;
  ``unknown_fraction=None`` keeps all). A silence item is a one-second crop of a background
  noise file at a random volume in [0, 1] (drawn per access in train, fixed per item in
  valid/test; the background files have no split of their own, as in the reference script).

In ``train``, a word clip is first augmented by ``augment`` (a
:class:`~audionets.data.augment.WaveAugment` config: speed, time shift, level, ...; none by
default), then, with probability ``noise_prob``, a random crop of a background noise file is
added at an SNR drawn from ``noise_snr_db``. Every item is cropped/padded to
``segment_seconds`` (1 s).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from audionets.data.layouts import (
    Clip, ClipDataset, load_mono, require, root_dir, uniform,
)
from audionets.data.transforms import crop_or_pad, mix_at_snr
from audionets.errors import check_choice
from audionets.registry import DATASETS

GET = ("download and extract Speech Commands v0.02 from "
       "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz")
TARGET_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN = "_unknown_"
SILENCE = "_silence_"
NOISE_DIR = "_background_noise_"
_SILENCE_PATH = Path(SILENCE)  # marks the clips that are drawn from background noise


@DATASETS.register("speech_commands")
class SpeechCommands(ClipDataset):
    """Speech Commands items ``{"wav": [T], "label": int64, "id": str}``.

    Args:
        root: the extracted v0.02 folder.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        sample_rate: clips are resampled to this rate (the data is 16 kHz).
        segment_seconds: crop/pad length (1 s clips; None keeps each file's length).
        task: ``"35"`` (every word) or ``"12"`` (10 words + unknown + silence).
        silence_fraction: 12-class task: silence items per target-word clip.
        unknown_fraction: 12-class task: cap on unknown clips per target-word clip, or None.
        noise_prob: train only: probability of adding background noise to a clip.
        noise_snr_db: train only: ``[low, high]`` SNR range of that noise.
        seed: fixes the unknown-word subset and the valid/test silence items.
        augment: train only: a :class:`~audionets.data.augment.WaveAugment` config applied to
            each word clip before the background noise (None: no augmentation).
    """

    def __init__(
        self,
        root: str | None = None,
        split: str = "train",
        sample_rate: int = 16000,
        segment_seconds: float | None = 1.0,
        task: str = "35",
        silence_fraction: float = 0.1,
        unknown_fraction: float | None = 0.1,
        noise_prob: float = 0.8,
        noise_snr_db: Sequence[float] = (0.0, 20.0),
        seed: int = 0,
        augment: dict | None = None,
    ) -> None:
        task = str(task)
        check_choice("data.task", task, ("35", "12"))
        root_path = root_dir(root, GET)
        lists = {
            name: require(root_path / f"{name}_list.txt", root_path, GET)
            for name in ("validation", "testing")
        }
        noise_dir = require(root_path / NOISE_DIR, root_path, GET)
        self.noise_files = sorted(noise_dir.glob("*.wav"))
        if not self.noise_files:
            require(noise_dir / "*.wav", root_path, GET)
        words = sorted(p.name for p in root_path.iterdir()
                       if p.is_dir() and not p.name.startswith(("_", ".")))
        held_out = {name: _read_list(path) for name, path in lists.items()}
        wanted = {"valid": held_out["validation"], "test": held_out["testing"]}
        excluded = held_out["validation"] | held_out["testing"]
        files = []
        for word in words:
            for path in sorted((root_path / word).glob("*.wav")):
                rel = f"{word}/{path.name}"
                if (rel in wanted[split]) if split in wanted else (rel not in excluded):
                    files.append((word, path, rel))
        self.seed = seed
        self.noise_prob = float(noise_prob)
        self.noise_snr_db = (float(noise_snr_db[0]), float(noise_snr_db[1]))
        if task == "35":
            labels = words
            index = {w: i for i, w in enumerate(words)}
            clips = [Clip(path, index[w], rel[:-4]) for w, path, rel in files]
        else:
            labels = [*TARGET_WORDS, UNKNOWN, SILENCE]
            clips = self._twelve_class_clips(files, labels, split, silence_fraction,
                                             unknown_fraction)
        super().__init__(clips, labels, split, sample_rate, segment_seconds, augment)
        self.task = task
        self._noise_cache: dict[int, torch.Tensor] = {}

    def _twelve_class_clips(
        self, files: list[tuple[str, Path, str]], labels: list[str], split: str,
        silence_fraction: float, unknown_fraction: float | None,
    ) -> list[Clip]:
        index = {w: i for i, w in enumerate(labels)}
        known = [Clip(p, index[w], rel[:-4]) for w, p, rel in files if w in TARGET_WORDS]
        unknown = [Clip(p, index[UNKNOWN], rel[:-4]) for w, p, rel in files
                   if w not in TARGET_WORDS]
        if unknown_fraction is not None:
            keep = min(len(unknown), math.ceil(unknown_fraction * len(known)))
            picked = sorted(random.Random(f"{self.seed}-{split}").sample(range(len(unknown)), keep))
            unknown = [unknown[i] for i in picked]
        num_silence = math.ceil(silence_fraction * len(known))
        silence = [Clip(_SILENCE_PATH, index[SILENCE], f"{SILENCE}/{split}-{i}")
                   for i in range(num_silence)]
        return known + unknown + silence

    def audio_files(self) -> Iterator[Path]:
        """The word clips' files (silence clips are cut from the background noise files)."""
        return (clip.path for clip in self.clips if clip.path != _SILENCE_PATH)

    def _noise(self, generator: torch.Generator | None, length: int) -> torch.Tensor:
        """A crop ``[length]`` of a background noise file drawn with ``generator``."""
        which = int(torch.randint(len(self.noise_files), (), generator=generator))
        if which not in self._noise_cache:
            self._noise_cache[which] = load_mono(self.noise_files[which], self.sample_rate)
        return crop_or_pad(self._noise_cache[which], length, random=True, generator=generator)

    def load_clip(self, index: int) -> torch.Tensor:
        clip = self.clips[index]
        length = self.segment or self.sample_rate
        if self.split == "train":
            generator = None
        else:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        if clip.path == _SILENCE_PATH:
            return self._noise(generator, length) * uniform(0.0, 1.0, generator)
        wav = super().load_clip(index)  # augmented in train
        if self.split == "train" and float(torch.rand(())) < self.noise_prob:
            noise = self._noise(None, wav.shape[-1])
            wav = mix_at_snr(wav, noise, uniform(*self.noise_snr_db, None))
        return wav


def _read_list(path: Path) -> set[str]:
    with open(path) as handle:
        return {line.strip() for line in handle if line.strip()}
