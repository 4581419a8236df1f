"""CSV manifests: file-backed datasets, and writing any registered dataset to disk.

A manifest is one CSV per split, ``<root>/<split>.csv`` (``split`` in train / valid / test),
with paths relative to the CSV's folder (absolute paths also work):

* separation (``manifest_separation``)::

      id,mix_path,s1_path,s2_path[,s3_path ...],duration
      synth_mix2-test-000000-spk200003_spk200011,test/mix/<id>.wav,test/s1/<id>.wav,...,4.0

* classification (``manifest_classification``)::

      id,path,label,category,duration
      synth_events-test-000000-tone,test/tone/synth_events-test-000000-tone.wav,0,tone,1.0

  ``label`` is the class index and ``category`` its name. ``<root>/labels.txt`` (one name per
  line, in label order) fixes the class list when present, so a split that lacks a class still
  gets the full list; otherwise the list comes from the CSV's (label, category) pairs.

``duration`` (seconds) is informative. Audio is loaded lazily per item (``audionets.audio``),
downmixed to mono and resampled to ``sample_rate`` when the file's rate differs.

The item logic (loading, resampling, aligned crop / pad to a segment, the check that every
listed file exists) is that of the real-dataset layouts: the manifest datasets are a
:class:`~audionets.data.layouts.FileMixtureDataset` and a
:class:`~audionets.data.layouts.ClipDataset` over the CSV's rows.

To materialise a synthetic set::

    audionets write-dataset --dataset synth_mix --out data/synth_mix --split test \\
        --num-examples 100
"""

from __future__ import annotations

import contextlib
import csv as csvlib
import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from audionets.data.layouts import Clip, ClipDataset, FileMixtureDataset, MixtureFiles, check_split
from audionets.errors import ConfigError, OutputError
from audionets.registry import DATASETS
from audionets.utils import atomic_write, prepare_out_dir

LABELS_FILE = "labels.txt"


# ---------------------------------------------------------------------------- helpers


def require_root(root: str | Path | None, *expected: str, key: str = "data.root",
                 hint: str = "") -> Path:
    """Check that ``root`` is a folder holding every relative path in ``expected``.

    Raises ConfigError naming ``key``, the missing path and ``hint`` (what the user should
    do, e.g. "download ESC-50 from ..."). Returns ``root`` as a Path.
    """
    suffix = f"; {hint}" if hint else ""
    if root is None or str(root) == "":
        raise ConfigError(f"{key}: not set; give the dataset folder ({key}=PATH){suffix}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{key}: folder {path} not found{suffix}")
    for rel in expected:
        if not (path / rel).exists():
            raise ConfigError(f"{key}: {path / rel} not found{suffix}")
    return path


def read_csv(path: str | Path, required: Iterable[str],
             key: str = "data.root") -> list[dict[str, str]]:
    """Rows of the CSV ``path`` as dicts; ConfigError if it is missing, empty or lacks a column."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{key}: manifest {path} not found; write it first "
                          "(audionets write-dataset --help)")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csvlib.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in required if c not in columns]
        if missing:
            raise ConfigError(f"{key}: manifest {path} lacks column {missing[0]!r} "
                              f"(has: {', '.join(columns) or 'nothing'})")
        rows = list(reader)
    if not rows:
        raise ConfigError(f"{key}: manifest {path} has no rows")
    return rows


def write_csv(path: str | Path, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write ``rows`` under the header ``columns`` to ``path`` atomically."""
    buffer = io.StringIO()
    writer = csvlib.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    with atomic_write(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")


def resolve(base: Path, value: str) -> Path:
    """A manifest path: relative to the manifest's folder ``base`` unless absolute."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _source_columns(columns: Sequence[str]) -> list[str]:
    """The ``s1_path, s2_path, ...`` columns, in order and without gaps."""
    found = sorted((c for c in columns if re.fullmatch(r"s\d+_path", c)),
                   key=lambda c: int(c[1:-5]))
    return [c for i, c in enumerate(found) if c == f"s{i + 1}_path"]


# ---------------------------------------------------------------------------- datasets


def _manifest_path(root: str | Path | None, split: str, csv_name: str | None) -> Path:
    base = require_root(root, hint="write a manifest with audionets write-dataset")
    path = base / (csv_name or f"{check_split(split)}.csv")
    if not path.is_file():
        raise ConfigError(f"data.root: {path} not found; write it with "
                          "audionets write-dataset or set data.csv")
    return path


@DATASETS.register("manifest_separation")
class ManifestSeparation(FileMixtureDataset):
    """Separation examples listed in ``<root>/<split>.csv`` (see the module docstring).

    Args:
        root: the manifest folder.
        split: "train" (random crops) or "valid" / "test" (crops from the start).
        sample_rate: rate of the items; files at other rates are resampled.
        segment_seconds: item length, or None for full-length items.
        num_speakers: when given, the manifest must have exactly this many source columns.
        csv: the CSV's file name inside ``root`` instead of ``<split>.csv``.
    """

    def __init__(self, root: str, split: str = "train", sample_rate: int = 8000,
                 segment_seconds: float | None = 4.0, num_speakers: int | None = None,
                 csv: str | None = None) -> None:
        path = _manifest_path(root, split, csv)
        rows = read_csv(path, ["id", "mix_path", "s1_path"])
        sources = _source_columns(list(rows[0]))
        if num_speakers is not None and len(sources) != int(num_speakers):
            raise ConfigError(f"data.num_speakers: {num_speakers} but manifest {path} lists "
                              f"{len(sources)} sources per mixture")
        base = path.parent
        examples = [
            MixtureFiles(resolve(base, row["mix_path"]),
                         tuple(resolve(base, row[c]) for c in sources), row["id"])
            for row in rows
        ]
        super().__init__(examples, split, sample_rate, segment_seconds)


@DATASETS.register("manifest_classification")
class ManifestClassification(ClipDataset):
    """Labelled clips listed in ``<root>/<split>.csv`` (see the module docstring).

    Args:
        root: the manifest folder (with an optional ``labels.txt``).
        split: "train" (random crops) or "valid" / "test" (crops from the start).
        sample_rate: rate of the items; files at other rates are resampled.
        segment_seconds: item length, or None for full-length clips.
        labels: class names in label order; default ``labels.txt`` or the CSV's categories.
        csv: the CSV's file name inside ``root`` instead of ``<split>.csv``.
        augment: train only: a :class:`~audionets.data.augment.WaveAugment` config (time
            shift, level, speed, ...) applied to each clip; None: no augmentation.
    """

    def __init__(self, root: str, split: str = "train", sample_rate: int = 16000,
                 segment_seconds: float | None = None, labels: list[str] | None = None,
                 csv: str | None = None, augment: dict | None = None) -> None:
        path = _manifest_path(root, split, csv)
        rows = read_csv(path, ["id", "path", "label"])
        base = path.parent
        try:
            clips = [Clip(resolve(base, row["path"]), int(row["label"]), row["id"]) for row in rows]
        except ValueError:
            raise ConfigError(f"data.root: manifest {path} has a non-integer label") from None
        if labels is None:
            labels = _read_labels(base, rows, path)
        bad = [clip.label for clip in clips if not 0 <= clip.label < len(labels)]
        if bad:
            raise ConfigError(f"data.labels: manifest {path} has label {bad[0]} but only "
                              f"{len(labels)} classes are named")
        super().__init__(clips, labels, split, sample_rate, segment_seconds, augment)


def _read_labels(base: Path, rows: list[dict[str, str]], path: Path) -> list[str]:
    labels_file = base / LABELS_FILE
    if labels_file.is_file():
        return [line.strip() for line in labels_file.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    if any(not row.get("category") for row in rows):
        raise ConfigError(f"data.labels: {labels_file} not found and manifest {path} has no "
                          "category column; write labels.txt or set data.labels")
    names: dict[int, str] = {}
    for row in rows:
        if names.setdefault(int(row["label"]), row["category"]) != row["category"]:
            raise ConfigError(f"data.root: manifest {path} gives label {row['label']} two "
                              "categories; fix the CSV")
    if sorted(names) != list(range(len(names))):
        raise ConfigError(f"data.labels: manifest {path} does not use labels 0..{len(names) - 1}; "
                          f"write {labels_file} (one class name per line)")
    return [names[i] for i in range(len(names))]


# ---------------------------------------------------------------------------- writing


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "item"


def write_dataset(dataset: torch.utils.data.Dataset, out_dir: str | Path, split: str | None = None,
                  subtype: str = "PCM_16", overwrite: bool = False) -> Path:
    """Write every item of ``dataset`` as WAV files plus the manifest ``<out_dir>/<split>.csv``.

    Separation items become ``<split>/mix/<id>.wav`` and ``<split>/s<k>/<id>.wav``;
    classification items ``<split>/<category>/<id>.wav`` (and ``labels.txt``). Audio is
    written with :func:`audionets.audio.save` at ``dataset.sample_rate`` (16-bit PCM unless
    ``subtype`` says otherwise). Returns the manifest's path; OutputError if it exists and
    ``overwrite`` is False. A call that does not finish (an error, Ctrl-C) removes the files it
    added, so no WAVs are left without a manifest.
    """
    split = check_split(split or getattr(dataset, "split", "test"))
    sample_rate = int(dataset.sample_rate)  # type: ignore[attr-defined]
    out = prepare_out_dir(Path(out_dir).expanduser())
    manifest = out / f"{split}.csv"
    if manifest.exists() and not overwrite:
        raise OutputError(f"{manifest}: already exists; choose another folder or pass overwrite")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ConfigError("data.num_examples: the dataset is empty; nothing to write")
    first = dataset[0]
    labels = getattr(dataset, "labels", None)
    if "sources" in first:
        num = first["sources"].shape[0]
        columns = ["id", "mix_path", *[f"s{k + 1}_path" for k in range(num)], "duration"]
        folders = ["mix", *[f"s{k + 1}" for k in range(num)]]
    elif "label" in first and labels is not None:
        columns = ["id", "path", "label", "category", "duration"]
        folders = []
    else:
        raise ConfigError("data.name: only separation and classification datasets can be "
                          "written as manifests")
    rows: list[list[object]] = []
    created: list[Path] = []  # files this call adds: removed again if it does not finish
    try:
        _write_items(dataset, first, out, split, sample_rate, subtype, folders, labels, rows,
                     created)
        if not folders:
            with atomic_write(out / LABELS_FILE) as tmp:
                tmp.write_text("".join(f"{name}\n" for name in labels), encoding="utf-8")
        write_csv(manifest, columns, rows)
    except BaseException:  # an error or Ctrl-C: no WAVs without a manifest
        for path in reversed(created):
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # the folders this call made, when empty
                path.parent.rmdir()
        raise
    return manifest


def _write_items(dataset, first: dict, out: Path, split: str, sample_rate: int, subtype: str,
                 folders: list[str], labels, rows: list, created: list[Path]) -> None:
    """Write every item's WAVs under ``out``, appending manifest rows to ``rows`` and the
    files that did not exist before to ``created``."""
    from audionets import audio

    for index in range(len(dataset)):  # type: ignore[arg-type]
        item = first if index == 0 else dataset[index]
        name = _safe(item["id"])
        length = item["mix" if folders else "wav"].shape[-1]
        duration = f"{length / sample_rate:.6f}"
        if folders:
            wavs = [item["mix"], *item["sources"]]
            rels = [f"{split}/{folder}/{name}.wav" for folder in folders]
            row: list[object] = [item["id"], *rels, duration]
        else:
            label = int(item["label"])
            rels = [f"{split}/{_safe(labels[label])}/{name}.wav"]
            wavs = [item["wav"]]
            row = [item["id"], rels[0], label, labels[label], duration]
        for rel, wav in zip(rels, wavs):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            if not (out / rel).exists():
                created.append(out / rel)
            audio.save(out / rel, wav, sample_rate, subtype=subtype)
        rows.append(row)
