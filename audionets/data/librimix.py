"""Libri2Mix / Libri3Mix (Cosentino et al. 2020): LibriSpeech speakers + WHAM! noise.

Layout written by ``generate_librimix.sh`` (https://github.com/JorisCos/LibriMix)::

    {root}/Libri2Mix/wav8k/min/metadata/mixture_train-360_mix_clean.csv   also wav16k/, max/
    {root}/Libri2Mix/wav8k/min/metadata/mixture_{train-100,dev,test}_mix_{clean,both,single}.csv
    {root}/Libri2Mix/wav8k/min/train-360/{mix_clean,mix_both,mix_single,s1,s2,noise}/*.wav

Each metadata CSV has the columns ``mixture_ID``, (newer versions) ``original_mixture_ID``,
``mixture_path``, ``source_1_path`` .. ``source_N_path`` (only ``source_1_path`` for
``mix_single``), ``noise_path`` (not for ``mix_clean``) and ``length``. The paths are absolute
paths of the machine that generated the data; when they do not exist here (the data was moved
or copied) they are resolved relative to the ``wav*/{min,max}`` folder from their last three
parts (``<subset>/<kind>/<file>``).

``root`` may also be the ``Libri2Mix`` folder itself. Splits: train = ``train_subset``
(``train-360`` or ``train-100``), valid = ``dev``, test = ``test``. ``mixture``: ``clean``
(sources s1..sN), ``both`` (noisy input, clean sources as targets), ``single`` (speaker 1 +
noise; target source 1).
"""

from __future__ import annotations

import csv
from pathlib import Path

from audionets.data.layouts import (
    FileMixtureDataset, MixtureFiles, check_split, require, root_dir,
)
from audionets.data.wsj0mix import RATE_DIRS
from audionets.errors import ConfigError, check_choice
from audionets.registry import DATASETS

GET = "generate {name} with https://github.com/JorisCos/LibriMix (generate_librimix.sh)"


@DATASETS.register("librimix")
class LibriMix(FileMixtureDataset):
    """LibriMix items ``{"mix": [T], "sources": [S, T], "id": str}``.

    Args:
        root: the folder holding ``Libri2Mix``/``Libri3Mix`` (or that folder itself).
        split: ``"train"``, ``"valid"`` or ``"test"``.
        sample_rate: 8000 or 16000; picks ``wav8k`` or ``wav16k``.
        segment_seconds: crop/pad length; None keeps full mixtures.
        num_speakers: 2 (Libri2Mix) or 3 (Libri3Mix).
        mixture: ``"clean"``, ``"both"`` or ``"single"``.
        mode: ``"min"`` or ``"max"``.
        train_subset: ``"train-360"`` or ``"train-100"``.
    """

    def __init__(
        self,
        root: str | None = None,
        split: str = "train",
        sample_rate: int = 8000,
        segment_seconds: float | None = 3.0,
        num_speakers: int = 2,
        mixture: str = "clean",
        mode: str = "min",
        train_subset: str = "train-360",
    ) -> None:
        check_choice("data.num_speakers", num_speakers, (2, 3))
        check_choice("data.mixture", mixture, ("clean", "both", "single"))
        check_choice("data.mode", mode, ("min", "max"))
        check_choice("data.train_subset", train_subset, ("train-360", "train-100"))
        if sample_rate not in RATE_DIRS:
            raise ConfigError(f"data.sample_rate: LibriMix is generated at 8000 or 16000 Hz, "
                              f"got {sample_rate}")
        name = f"Libri{num_speakers}Mix"
        get = GET.format(name=name)
        root_path = root_dir(root, get)
        base = root_path if root_path.name == name else root_path / name
        mode_dir = base / RATE_DIRS[sample_rate] / mode
        subset = {"train": train_subset, "valid": "dev", "test": "test"}[check_split(split)]
        csv_path = require(mode_dir / "metadata" / f"mixture_{subset}_mix_{mixture}.csv",
                           root_path, get)
        num_sources = 1 if mixture == "single" else num_speakers
        examples = read_metadata(csv_path, mode_dir, num_sources)
        super().__init__(examples, split, sample_rate, segment_seconds)
        self.mixture = mixture


def read_metadata(csv_path: Path, mode_dir: Path, num_sources: int) -> list[MixtureFiles]:
    """Examples of a LibriMix metadata CSV, with paths resolved for this machine."""
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = ["mixture_ID", "mixture_path"] + [f"source_{k + 1}_path" for k in range(num_sources)]
    if not rows:
        raise ConfigError(f"{csv_path}: no mixtures listed; re-generate LibriMix")
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise ConfigError(f"{csv_path}: no column {missing[0]}; is this a LibriMix metadata file?")
    relocate = not Path(rows[0]["mixture_path"]).exists()
    if relocate and not _moved(rows[0]["mixture_path"], mode_dir).exists():
        raise ConfigError(
            f"{csv_path}: audio {rows[0]['mixture_path']} not found, nor at "
            f"{_moved(rows[0]['mixture_path'], mode_dir)}; keep the generated folders next to "
            "metadata/"
        )

    def resolve(path: str) -> Path:
        return _moved(path, mode_dir) if relocate else Path(path)

    return [
        MixtureFiles(resolve(row["mixture_path"]),
                     tuple(resolve(row[c]) for c in columns[2:]), row["mixture_ID"])
        for row in rows
    ]


def _moved(path: str, mode_dir: Path) -> Path:
    """``path``'s last three parts (``<subset>/<kind>/<file>``) under ``mode_dir``."""
    return mode_dir.joinpath(*Path(path.replace("\\", "/")).parts[-3:])
