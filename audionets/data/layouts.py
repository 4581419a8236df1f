"""Shared pieces of the real-dataset layouts (ESC-50, Speech Commands, WSJ0-mix, LibriMix, ...).

- :func:`require` checks that a dataset folder holds an expected file or folder and otherwise
  raises a one-line :class:`~audionets.errors.ConfigError` that names ``data.root``, the missing
  path, and where to get the data.
- :func:`check_files_exist` checks, when a dataset is built, that every audio file its layout
  or manifest names is there, so a gap in a download fails at once and not hours into training.
- :func:`root_dir`, :func:`check_split` validate arguments;
  :func:`fold_splits` maps a test fold to the train/valid/test folds of K-fold layouts.
- :class:`ClipDataset` is a classification dataset over a list of ``(path, label, id)`` clips,
  with the train split's ``augment`` (:mod:`audionets.data.augment`).
- :class:`FileMixtureDataset` is a separation dataset over ``(mix path, source paths, id)``.
- :func:`mix_utterances` builds a WSJ0-2mix style mixture from single-speaker utterances (used
  by dynamic mixing and by the espeak-ng ``tts_mix`` set).

All audio is read lazily, one item at a time, with :func:`audionets.audio.load` (downmixed to
mono, resampled to the dataset's ``sample_rate``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from audionets import audio
from audionets.data.augment import build_augment
from audionets.data.transforms import active_rms, apply_gain_db, crop_or_pad, segment_length
from audionets.errors import ConfigError

SPLITS = ("train", "valid", "test")


def root_dir(root: str | Path | None, get: str) -> Path:
    """``root`` as a Path; ConfigError naming ``data.root`` when it is unset (None).

    ``get`` says how to obtain the data, e.g. ``"download ESC-50 from https://..."``.
    """
    if root is None or str(root) == "":
        raise ConfigError(f"data.root: not set; {get} and pass data.root=PATH")
    return Path(root).expanduser()


def require(path: Path, root: Path, get: str) -> Path:
    """Return ``path`` if it exists, else raise ConfigError naming ``data.root``.

    Args:
        path: the file or folder the layout needs.
        root: the ``data.root`` the user passed.
        get: how to obtain the data, e.g. ``"download ESC-50 from https://..."``.
    """
    if path.exists():
        return path
    if not root.is_dir():
        raise ConfigError(
            f"data.root: {root} does not exist; {get} and pass data.root=PATH"
        )
    missing = path.relative_to(root) if path.is_relative_to(root) else path
    raise ConfigError(
        f"data.root: {root} has no {missing}; {get} and pass data.root=PATH"
    )


def check_files_exist(paths: Iterable[Path], split: str) -> None:
    """Raise one ConfigError that counts the missing files among ``paths`` and names the first.

    Args:
        paths: every audio file one split of a dataset reads.
        split: the split's name, for the message.
    """
    checked, missing = 0, []
    for path in paths:
        checked += 1
        if not os.path.isfile(path):
            missing.append(path)
    if missing:
        raise ConfigError(
            f"data.root: {len(missing)} of the {checked} audio files the {split} split names "
            f"are missing (first: {missing[0]}); complete the download or regenerate the dataset"
        )


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"data.split: {split!r} is not one of {', '.join(SPLITS)}")
    return split


def load_mono(path: Path | str, sample_rate: int) -> torch.Tensor:
    """Read ``path`` as mono float32 ``[T]`` at ``sample_rate``."""
    wav, _ = audio.load(path, sample_rate=sample_rate, mono=True)
    return wav[0]


def fold_splits(test_fold: int, num_folds: int) -> dict[str, list[int]]:
    """Folds of each split for K-fold cross-validation on predefined folds.

    ``test`` is ``test_fold``; ``valid`` is the fold before it (fold 1 wraps to ``num_folds``);
    ``train`` is every other fold. Example: 5 folds, test 1 -> valid 5, train 2-4.
    """
    if not isinstance(test_fold, int) or not 1 <= test_fold <= num_folds:
        raise ConfigError(f"data.test_fold: must be an integer in 1..{num_folds}, got {test_fold!r}")
    valid_fold = num_folds if test_fold == 1 else test_fold - 1
    train = [f for f in range(1, num_folds + 1) if f not in (test_fold, valid_fold)]
    return {"train": train, "valid": [valid_fold], "test": [test_fold]}


@dataclass(frozen=True)
class Clip:
    """One labelled audio file."""

    path: Path
    label: int
    id: str


class ClipDataset(Dataset):
    """Classification items ``{"wav": [T], "label": int64, "id": str}`` from a list of clips.

    In ``train``, each clip read is first changed by ``augment`` (a
    :class:`~audionets.data.augment.WaveAugment` config: speed, time shift, level, ...; None:
    no augmentation; ignored in ``valid``/``test``, so that they score the clips as they are).
    With ``segment_seconds`` every item then has exactly that many samples: a random crop in
    ``train``, a deterministic crop (the start) in ``valid``/``test``, zero padding when short.
    """

    def __init__(
        self,
        clips: list[Clip],
        labels: list[str],
        split: str,
        sample_rate: int,
        segment_seconds: float | None,
        augment: dict | None = None,
    ) -> None:
        self.clips = clips
        self.labels = labels
        self.split = check_split(split)
        self.sample_rate = int(sample_rate)
        self.segment = segment_length(segment_seconds, self.sample_rate)
        self.augment = build_augment(augment, self.sample_rate) if split == "train" else None
        check_files_exist(self.audio_files(), self.split)

    def __len__(self) -> int:
        return len(self.clips)

    def audio_files(self) -> Iterator[Path]:
        """The files the clips are read from (checked to exist when the dataset is built)."""
        return (clip.path for clip in self.clips)

    def load_clip(self, index: int) -> torch.Tensor:
        """The waveform ``[T]`` of clip ``index`` before any cropping (augmented in train)."""
        wav = load_mono(self.clips[index].path, self.sample_rate)
        return wav if self.augment is None else self.augment(wav)

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        wav = self.load_clip(index)
        if self.segment is not None:
            wav = crop_or_pad(wav, self.segment, random=self.split == "train")
        return {"wav": wav, "label": torch.tensor(clip.label, dtype=torch.int64), "id": clip.id}

    def class_counts(self) -> list[int]:
        """Number of clips of each label, in ``labels`` order."""
        counts = [0] * len(self.labels)
        for clip in self.clips:
            counts[clip.label] += 1
        return counts


@dataclass(frozen=True)
class MixtureFiles:
    """One pre-mixed example: the mixture file and its reference source files."""

    mix: Path
    sources: tuple[Path, ...]
    id: str


class FileMixtureDataset(Dataset):
    """Separation items ``{"mix": [T], "sources": [S, T], "id": str}`` from mixture files.

    With ``segment_seconds`` the mixture and its sources are cropped at the same offset (random
    in ``train``, deterministic in ``valid``/``test``) and zero padded when short. Without it,
    items keep their full length (the shortest of mixture and sources, which are equal in the
    official layouts).
    """

    def __init__(
        self, examples: list[MixtureFiles], split: str, sample_rate: int,
        segment_seconds: float | None,
    ) -> None:
        self.examples = examples
        self.split = check_split(split)
        self.sample_rate = int(sample_rate)
        self.segment = segment_length(segment_seconds, self.sample_rate)
        files = (path for example in examples for path in (example.mix, *example.sources))
        check_files_exist(files, self.split)
        self.num_sources = len(examples[0].sources) if examples else 0

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        example = self.examples[index]
        wavs = [load_mono(example.mix, self.sample_rate)]
        wavs += [load_mono(path, self.sample_rate) for path in example.sources]
        length = min(w.shape[-1] for w in wavs)
        stacked = torch.stack([w[:length] for w in wavs])  # [1 + S, T]
        if self.segment is not None:
            stacked = crop_or_pad(stacked, self.segment, random=self.split == "train")
        return {"mix": stacked[0], "sources": stacked[1:], "id": example.id}


def uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    """A float drawn uniformly from ``[low, high)`` with ``generator`` (global RNG if None)."""
    return low + (high - low) * float(torch.rand((), generator=generator))


def check_gain_range(gain_db: Sequence[float]) -> tuple[float, float]:
    """``data.gain_db`` as ``(low, high)``; ConfigError unless ``0 <= low <= high``."""
    try:
        low, high = (float(v) for v in gain_db)
    except (TypeError, ValueError):
        raise ConfigError(f"data.gain_db: expected [low, high] in dB, got {gain_db!r}") from None
    if not 0 <= low <= high:
        raise ConfigError(f"data.gain_db: expected 0 <= low <= high (the sign is random), "
                          f"got {gain_db!r}")
    return low, high


def mix_utterances(
    utterances: Sequence[torch.Tensor],
    sample_rate: int,
    generator: torch.Generator | None = None,
    gain_db: Sequence[float] = (0.0, 5.0),
    segment: int | None = None,
    crop_randomly: bool = True,
    peak: float = 0.9,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix single-speaker utterances WSJ0-2mix style (the convention of ``synth_mix`` too).

    Exact zeros at either end of an utterance (the padding of wsj0-mix's ``max`` folders) are
    dropped. Each utterance ``[T_i]`` is scaled to unit active level (:func:`active_rms`, so
    pauses do not count), then every one after the first is made louder or quieter than the
    first by a level drawn uniformly from ``gain_db`` (random sign): the 0-5 dB level
    differences of WSJ0-2mix. All start at t=0. Without ``segment`` the mixture is as long as
    the shortest utterance ("min" mode); with it, each utterance is cropped (at a random
    offset if ``crop_randomly``, else at its start) or zero padded to ``segment`` samples. If
    the mixture's peak exceeds ``peak``, mixture and sources are scaled down together.

    Returns:
        ``(mix [T], sources [S, T])`` with ``mix == sources.sum(0)``.
    """
    low, high = float(gain_db[0]), float(gain_db[1])
    sources = []
    for k, wav in enumerate(utterances):
        wav = _strip_zeros(wav)
        level = 0.0
        if k > 0:
            sign = 1.0 if float(torch.rand((), generator=generator)) < 0.5 else -1.0
            level = sign * uniform(low, high, generator)
        sources.append(apply_gain_db(wav / active_rms(wav, sample_rate), level))
    if segment is None:
        length = min(s.shape[-1] for s in sources)
        stacked = torch.stack([s[:length] for s in sources])
    else:
        stacked = torch.stack([
            crop_or_pad(s, segment, random=crop_randomly, generator=generator) for s in sources
        ])
    top = float(stacked.sum(dim=0).abs().max())
    if top > peak:
        stacked = stacked * (peak / top)
    return stacked.sum(dim=0), stacked


def _strip_zeros(wav: torch.Tensor) -> torch.Tensor:
    """``wav [T]`` without the exact zeros at its ends (all of it if it is all zeros)."""
    nonzero = torch.nonzero(wav).flatten()
    if nonzero.numel() == 0:
        return wav
    return wav[int(nonzero[0]): int(nonzero[-1]) + 1]
