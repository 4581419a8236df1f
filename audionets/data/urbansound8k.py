"""UrbanSound8K: 8,732 urban sound excerpts (<= 4 s) in 10 classes, 10 predefined folds.

Layout (https://urbansounddataset.weebly.com/urbansound8k.html)::

    {root}/audio/fold1 .. fold10/*.wav       various rates, bit depths and channel counts
    {root}/metadata/UrbanSound8K.csv         slice_file_name, fsID, start, end, salience,
                                             fold, classID, class

The official protocol is 10-fold cross-validation on the predefined folds (never reshuffled,
because slices of one recording share a fold). Its folds have no validation part, so for
``test_fold=K`` (default 10) we hold out the fold before K (fold 1 wraps to 10) for model
selection and train on the other eight. ``labels`` are the 10 classes ordered by ``classID``.
In ``train``, ``augment`` (a :class:`~audionets.data.augment.WaveAugment` config) changes each
clip before it is cropped or padded (see :class:`~audionets.data.layouts.ClipDataset`).
"""

from __future__ import annotations

import csv
from pathlib import Path

from audionets.data.layouts import (
    Clip, ClipDataset, check_split, fold_splits, require, root_dir,
)
from audionets.errors import ConfigError
from audionets.registry import DATASETS

GET = "download UrbanSound8K from https://urbansounddataset.weebly.com/urbansound8k.html"
NUM_FOLDS = 10


@DATASETS.register("urbansound8k")
class UrbanSound8K(ClipDataset):
    """UrbanSound8K items ``{"wav": [T], "label": int64, "id": str}``; ``labels`` has 10 names.

    Args:
        root: the UrbanSound8K folder (holding ``audio/`` and ``metadata/UrbanSound8K.csv``).
        split: ``"train"``, ``"valid"`` or ``"test"``.
        sample_rate: clips are downmixed to mono and resampled to this rate.
        segment_seconds: crop/pad every clip to this length (4.0 covers every clip); None
            keeps the clip's own length.
        test_fold: the fold held out for testing (1..10); valid is the fold before it.
        augment: train only: a :class:`~audionets.data.augment.WaveAugment` config (time
            shift, level, speed, ...) applied to each clip; None: no augmentation.
    """

    def __init__(
        self,
        root: str | None = None,
        split: str = "train",
        sample_rate: int = 16000,
        segment_seconds: float | None = 4.0,
        test_fold: int = 10,
        augment: dict | None = None,
    ) -> None:
        root_path = root_dir(root, GET)
        meta = require(root_path / "metadata" / "UrbanSound8K.csv", root_path, GET)
        audio_dir = require(root_path / "audio", root_path, GET)
        folds = fold_splits(test_fold, NUM_FOLDS)[check_split(split)]
        with open(meta, newline="") as handle:
            rows = list(csv.DictReader(handle))
        needed = {"slice_file_name", "fold", "classID", "class"}
        if not rows or not needed <= set(rows[0]):
            raise ConfigError(
                f"{meta}: expected the columns {', '.join(sorted(needed))}; "
                "is this UrbanSound8K's metadata file?"
            )
        names: dict[int, str] = {}
        clips = []
        for row in rows:
            class_id, fold = int(row["classID"]), int(row["fold"])
            names.setdefault(class_id, row["class"])
            if fold in folds:
                path = audio_dir / f"fold{fold}" / row["slice_file_name"]
                clips.append(Clip(path, class_id, Path(row["slice_file_name"]).stem))
        if sorted(names) != list(range(len(names))):
            raise ConfigError(f"{meta}: classID values are not 0..N-1")
        super().__init__(clips, [names[c] for c in range(len(names))], split, sample_rate,
                         segment_seconds, augment)
        self.test_fold = test_fold
