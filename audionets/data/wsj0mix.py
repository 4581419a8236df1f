"""WSJ0-2mix / WSJ0-3mix (Hershey et al. 2016), optionally with dynamic mixing.

Layout written by the official MATLAB scripts (``create_wav_2speakers.m``)::

    {root}/wav8k/min/tr/mix/<name>.wav        also wav16k/, max/
    {root}/wav8k/min/tr/s1/<name>.wav         same <name> in every folder
    {root}/wav8k/min/tr/s2/<name>.wav
    {root}/wav8k/min/tr/s3/<name>.wav         WSJ0-3mix only
    {root}/wav8k/min/cv/...  {root}/wav8k/min/tt/...

``root`` is the folder holding ``wav8k``/``wav16k`` (the scripts' ``2speakers`` or
``3speakers`` folder); a root that holds ``2speakers/`` or ``3speakers/`` is accepted too.
Splits: train = ``tr``, valid = ``cv``, test = ``tt``. ``sample_rate`` (8000 or 16000) and
``mode`` (``min``: mixture as long as the shortest utterance; ``max``: the longest) pick the
folder.

Dynamic mixing (train only): a mixture file name is ``<utt1>_<snr1>_<utt2>_<snr2>[_<utt3>_<snr3>]``
and ``s<k>/<name>.wav`` holds utterance ``<utt k>``; the WSJ0 speaker id is the first three
characters of an utterance id (``01aa010k`` -> ``01a``). Each training item draws
``num_speakers`` utterances of different speakers from the ``tr/s*`` files (one file per
utterance id), optionally speed-perturbs each by a factor drawn from ``speed_perturb`` and mixes
them as :func:`~audionets.data.layouts.mix_utterances` does: unit active level, then each
after the first louder or quieter than the first by a level in ``gain_db`` (0-5 dB, as
WSJ0-2mix). An epoch has as many items as ``tr`` has mixtures. Validation and test
always use the official mixtures.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

import torch

from audionets.data.layouts import (
    FileMixtureDataset, MixtureFiles, check_gain_range, check_split, load_mono,
    mix_utterances, require, root_dir, uniform,
)
from audionets.data.transforms import speed_perturb
from audionets.errors import ConfigError, check_choice
from audionets.registry import DATASETS

GET = ("create {name} from WSJ0 (LDC93S6A) with the wsj0-mix scripts "
       "(https://github.com/mpariente/pywsj0-mix)")
SPLIT_DIRS = {"train": "tr", "valid": "cv", "test": "tt"}
RATE_DIRS = {8000: "wav8k", 16000: "wav16k"}


def speaker_of(name: str, source: int) -> str:
    """WSJ0 speaker id of source ``source`` (0-based) of the mixture file stem ``name``."""
    return name.split("_")[2 * source][:3]


def utterance_of(name: str, source: int) -> str:
    """WSJ0 utterance id of source ``source`` (0-based) of the mixture file stem ``name``."""
    return name.split("_")[2 * source]


def layout_dir(root: Path, sample_rate: int, mode: str, split: str, name: str, get: str,
               speakers_dir: str | None = None) -> Path:
    """``{root}/wav{8k,16k}/{min,max}/{tr,cv,tt}``, checked to exist (ConfigError otherwise)."""
    if sample_rate not in RATE_DIRS:
        raise ConfigError(
            f"data.sample_rate: {name} exists at 8000 or 16000 Hz, got {sample_rate}"
        )
    check_choice("data.mode", mode, ("min", "max"))
    if speakers_dir and not (root / RATE_DIRS[sample_rate]).exists() and (root / speakers_dir).is_dir():
        root = root / speakers_dir
    return require(root / RATE_DIRS[sample_rate] / mode / SPLIT_DIRS[check_split(split)],
                   root, get)


def folder_examples(split_dir: Path, root: Path, mix_dir: str, source_dirs: Sequence[str],
                    get: str) -> list[MixtureFiles]:
    """One example per ``{split_dir}/{mix_dir}/*.wav``, with ``{split_dir}/{s}/<same name>``."""
    mixes = sorted(require(split_dir / mix_dir, root, get).glob("*.wav"))
    if not mixes:
        require(split_dir / mix_dir / "*.wav", root, get)
    for source_dir in source_dirs:
        require(split_dir / source_dir, root, get)
    return [MixtureFiles(m, tuple(split_dir / s / m.name for s in source_dirs), m.stem)
            for m in mixes]


@DATASETS.register("wsj0mix")
class WSJ0Mix(FileMixtureDataset):
    """WSJ0-2mix / 3mix items ``{"mix": [T], "sources": [S, T], "id": str}``.

    Args:
        root: the folder holding ``wav8k``/``wav16k`` (or ``2speakers``/``3speakers``).
        split: ``"train"``, ``"valid"`` or ``"test"``.
        sample_rate: 8000 or 16000; picks ``wav8k`` or ``wav16k``.
        segment_seconds: crop/pad length; None keeps full mixtures.
        num_speakers: 2 (WSJ0-2mix) or 3 (WSJ0-3mix).
        mode: ``"min"`` or ``"max"``.
        dynamic_mixing: train only: remix single-speaker sources on the fly (see module doc).
        speed_perturb: ``[low, high]`` speed factor range for dynamic mixing, or None.
        gain_db: ``[low, high]`` dB for dynamic mixing: the level difference of each source
            after the first to the first (random sign).
    """

    def __init__(
        self,
        root: str | None = None,
        split: str = "train",
        sample_rate: int = 8000,
        segment_seconds: float | None = 4.0,
        num_speakers: int = 2,
        mode: str = "min",
        dynamic_mixing: bool = False,
        speed_perturb: Sequence[float] | None = None,
        gain_db: Sequence[float] = (0.0, 5.0),
    ) -> None:
        check_choice("data.num_speakers", num_speakers, (2, 3))
        name = f"WSJ0-{num_speakers}mix"
        get = GET.format(name=name)
        root_path = root_dir(root, get)
        split_dir = layout_dir(root_path, sample_rate, mode, split, name, get,
                               f"{num_speakers}speakers")
        sources = [f"s{k + 1}" for k in range(num_speakers)]
        examples = folder_examples(split_dir, root_path, "mix", sources, get)
        super().__init__(examples, split, sample_rate, segment_seconds)
        if speed_perturb is not None and not 0 < speed_perturb[0] <= speed_perturb[1]:
            raise ConfigError(f"data.speed_perturb: need 0 < low <= high, got {speed_perturb}")
        self.dynamic_mixing = bool(dynamic_mixing) and split == "train"
        self.speed_range = None if speed_perturb is None else (
            float(speed_perturb[0]), float(speed_perturb[1]))
        self.gain_db = check_gain_range(gain_db)
        self.pool: dict[str, list[Path]] = {}
        if self.dynamic_mixing:
            self.pool = source_pool(examples)
            if len(self.pool) < num_speakers:
                raise ConfigError(
                    f"data.dynamic_mixing: {split_dir} has {len(self.pool)} speakers, "
                    f"need at least {num_speakers}"
                )
        self._speakers = sorted(self.pool)

    def __getitem__(self, index: int) -> dict:
        if not self.dynamic_mixing:
            return super().__getitem__(index)
        picks = torch.randperm(len(self._speakers))[: self.num_sources].tolist()
        utterances, names = [], []
        for pick in picks:
            files = self.pool[self._speakers[pick]]
            path = files[int(torch.randint(len(files), ()))]
            wav = load_mono(path, self.sample_rate)
            if self.speed_range is not None:
                wav = speed_perturb(wav, uniform(*self.speed_range, None))
            utterances.append(wav)
            names.append(path.stem)
        mix, sources = mix_utterances(utterances, self.sample_rate, None, self.gain_db,
                                      self.segment)
        return {"mix": mix, "sources": sources, "id": "dm_" + "_".join(names)}


def source_pool(examples: list[MixtureFiles]) -> dict[str, list[Path]]:
    """Speaker id -> single-speaker files, one file per WSJ0 utterance (first seen kept)."""
    pool: dict[str, list[Path]] = defaultdict(list)
    seen: set[str] = set()
    for example in examples:
        for k, path in enumerate(example.sources):
            try:
                utterance = utterance_of(example.id, k)
            except IndexError:
                raise ConfigError(
                    f"data.dynamic_mixing: {example.mix.name} is not named "
                    "<utt1>_<snr1>_<utt2>_<snr2>...; cannot tell its speakers"
                ) from None
            if utterance not in seen:
                seen.add(utterance)
                pool[speaker_of(example.id, k)].append(path)
    return dict(pool)

