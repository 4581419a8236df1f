"""ESC-50: 2,000 five-second environmental sound clips in 50 classes, 5 predefined folds.

Layout (the GitHub archive of https://github.com/karolpiczak/ESC-50)::

    {root}/audio/*.wav          e.g. 1-100032-A-0.wav (44.1 kHz mono; any rate/length accepted)
    {root}/meta/esc50.csv       filename, fold, target, category, esc10, src_file, take

Splits for ``test_fold=K`` (default 5): ``test`` is fold K, ``valid`` the fold before it (fold
1 wraps to 5), ``train`` the remaining three folds. The default gives train 1-3, valid 4,
test 5. The ESC-50 protocol is 5-fold cross-validation: run ``test_fold`` = 1..5 and average.
``labels`` are the 50 categories ordered by their ``target`` number. ``subset="esc10"`` keeps
the 400 clips of the ESC-10 subset (column ``esc10``), labelled 0..9 in ``target`` order.
In ``train``, ``augment`` (a :class:`~audionets.data.augment.WaveAugment` config) changes each
clip before it is cropped (see :class:`~audionets.data.layouts.ClipDataset`).
"""

from __future__ import annotations

import csv
from pathlib import Path

from audionets.data.layouts import (
    Clip, ClipDataset, check_split, fold_splits, require, root_dir,
)
from audionets.errors import ConfigError, check_choice
from audionets.registry import DATASETS

GET = "download ESC-50 from https://github.com/karolpiczak/ESC-50"
NUM_FOLDS = 5


@DATASETS.register("esc50")
class ESC50(ClipDataset):
    """ESC-50 items ``{"wav": [T], "label": int64, "id": str}``; ``labels`` has 50 (or 10) names.

    Args:
        root: the ESC-50 folder (holding ``audio/`` and ``meta/esc50.csv``).
        split: ``"train"``, ``"valid"`` or ``"test"``.
        sample_rate: clips are resampled to this rate.
        segment_seconds: crop/pad every clip to this length; None keeps the full clip.
        test_fold: the fold held out for testing (1..5); valid is the fold before it.
        subset: ``"esc50"`` (all clips) or ``"esc10"`` (the 10-class ESC-10 subset).
        augment: train only: a :class:`~audionets.data.augment.WaveAugment` config (time
            shift, level, speed, ...) applied to each clip; None: no augmentation.
    """

    def __init__(
        self,
        root: str | None = None,
        split: str = "train",
        sample_rate: int = 16000,
        segment_seconds: float | None = 5.0,
        test_fold: int = 5,
        subset: str = "esc50",
        augment: dict | None = None,
    ) -> None:
        check_choice("data.subset", subset, ("esc50", "esc10"))
        root_path = root_dir(root, GET)
        meta = require(root_path / "meta" / "esc50.csv", root_path, GET)
        audio_dir = require(root_path / "audio", root_path, GET)
        folds = fold_splits(test_fold, NUM_FOLDS)[check_split(split)]
        rows = _read_rows(meta, subset)
        names = {int(row["target"]): row["category"] for row in rows}
        targets = sorted(names)
        if subset == "esc50" and targets != list(range(len(targets))):
            raise ConfigError(f"{meta}: targets are not 0..N-1; is this the ESC-50 meta file?")
        label_of = {t: i for i, t in enumerate(targets)}
        clips = [Clip(audio_dir / row["filename"], label_of[int(row["target"])],
                      Path(row["filename"]).stem)
                 for row in rows if int(row["fold"]) in folds]
        super().__init__(clips, [names[t] for t in targets], split, sample_rate, segment_seconds,
                         augment)
        self.test_fold = test_fold


def _read_rows(meta: Path, subset: str) -> list[dict[str, str]]:
    """The rows of ``meta`` (all, or those with ``esc10 == True`` for ESC-10)."""
    with open(meta, newline="") as handle:
        rows = list(csv.DictReader(handle))
    needed = {"filename", "fold", "target", "category"} | ({"esc10"} if subset == "esc10" else set())
    if not rows or not needed <= set(rows[0]):
        raise ConfigError(
            f"{meta}: expected the columns {', '.join(sorted(needed))}; is this the ESC-50 meta file?"
        )
    if subset == "esc10":
        rows = [row for row in rows if row["esc10"].strip().lower() == "true"]
        if not rows:
            raise ConfigError(f"{meta}: no clip has esc10=True; is this the ESC-50 meta file?")
    return rows
