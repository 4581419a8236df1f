"""Per-file evaluation of a trained model on a dataset split (``audionets evaluate``).

:func:`evaluate` runs the model on every item (batch size 1, full length) and returns one row
per file plus a summary (mean, median, std, count of each metric):

- classification: ``label``, ``prediction``, ``correct``; summary accuracy and a confusion
  matrix (rows: true class, columns: predicted class);
- separation: ``si_snr``, ``si_snri``, ``sdr``, ``sdri`` in dB, averaged over the sources after
  the best permutation (SI-SNR), BSS Eval SDR with ``fast_bss_eval``;
- reconstruction: ``snr`` in dB.

A file whose reference is silent has no defined SNR-type metric: its metrics are left empty
and its ``note`` says ``reference is silent`` (they never turn into NaN in the summary).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from audionets.utils import atomic_write, progress_bar

#: a reference whose RMS is below this (about -100 dBFS) counts as silent
SILENCE_RMS = 1e-5
METRICS = {
    "classification": ("correct",),
    "separation": ("si_snr", "si_snri", "sdr", "sdri"),
    "reconstruction": ("snr",),
}


@dataclass
class EvalResult:
    """Rows (one dict per file), the summary, and for classifiers the confusion matrix."""

    task: str
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    labels: list[str] | None = None
    confusion: np.ndarray | None = None
    notes: dict[str, int] = field(default_factory=dict)


log = logging.getLogger("audionets.evaluate")
LOG_INTERVAL_S = 60.0
SDR_FILTER = 512  # BSS Eval's distortion filter length (mir_eval's default)


def _finite(row: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Replace non-finite metric values by None with a note (never NaN in a summary)."""
    bad = [n for n in names if row.get(n) is not None and not math.isfinite(row[n])]
    for name in bad:
        row[name] = None
    if bad:
        note = "non-finite " + ", ".join(bad)
        row["note"] = f"{row['note']}; {note}" if row.get("note") else note
    return row


def _silent(reference: torch.Tensor) -> bool:
    """True when any channel/source of ``reference [..., T]`` is silent."""
    rms = reference.double().pow(2).mean(dim=-1).sqrt()
    return bool((rms < SILENCE_RMS).any())


@torch.no_grad()
def evaluate_item(model: nn.Module, task: str, item: dict[str, Any], device: torch.device,
                  sdr: bool = True) -> dict[str, Any]:
    """Metrics of one dataset item (see the module docstring); ``note`` explains gaps."""
    from audionets import metrics as M

    row: dict[str, Any] = {"id": str(item.get("id", ""))}
    if task == "classification":
        logits = model(item["wav"].to(device)[None].float())[0]
        label, prediction = int(item["label"]), int(logits.argmax())
        row.update(label=label, prediction=prediction, correct=float(label == prediction))
        return row
    if task == "reconstruction":
        wav = item["wav"].to(device).float()
        if _silent(wav):
            return {**row, "snr": None, "note": "reference is silent"}
        output = model(wav[None])[0]
        return _finite({**row, "snr": float(M.snr(output, wav))}, METRICS[task])
    mix = item["mix"].to(device).float()
    sources = item["sources"].to(device).float()  # [S, T]
    if _silent(sources):
        return {**row, **{k: None for k in METRICS["separation"]}, "note": "reference is silent"}
    estimates = model(mix[None])  # [1, S, T]
    if estimates.shape[1:] != sources.shape:
        from audionets.errors import ConfigError

        raise ConfigError(f"model output {tuple(estimates.shape[1:])} does not match the "
                          f"references {tuple(sources.shape)} of item {row['id']}; the model "
                          "separates a different number of sources than the data has")
    _, perm = M.pit(M.pairwise_neg_si_snr, estimates, sources[None])
    ordered = M.reorder(estimates, perm)[0]  # [S, T], lined up with the references
    row["si_snr"] = float(M.si_snr(ordered, sources).mean())
    row["si_snri"] = float(M.si_snr_improvement(ordered, sources, mix).mean())
    if sdr and sources.shape[-1] > SDR_FILTER:
        row["sdr"] = float(M.sdr(ordered, sources, SDR_FILTER).mean())
        row["sdri"] = float(M.sdr_improvement(ordered, sources, mix, SDR_FILTER).mean())
    elif sdr:
        row.update(sdr=None, sdri=None, note=f"too short for SDR (<= {SDR_FILTER} samples)")
    return _finite(row, METRICS[task])


def summarize(rows: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """``{metric: {mean, median, std, count}}`` over the rows that have the metric."""
    summary = {}
    for name in names:
        values = np.array([r[name] for r in rows if r.get(name) is not None], dtype=np.float64)
        if values.size:
            summary[name] = {"mean": float(values.mean()), "median": float(np.median(values)),
                             "std": float(values.std()), "count": int(values.size)}
        else:
            summary[name] = {"mean": None, "median": None, "std": None, "count": 0}
    return summary


def evaluate(model: nn.Module, task: str, dataset: Any, device: str | torch.device = "cpu",
             labels: list[str] | None = None, limit: int | None = None, sdr: bool = True,
             progress: bool = False) -> EvalResult:
    """Evaluate ``model`` on every item of ``dataset`` (the first ``limit`` ones if given)."""
    from audionets.training.tasks import check_items

    check_items(task, dataset, f"dataset {type(dataset).__name__}")
    device = torch.device(device)
    data_labels = getattr(dataset, "labels", None)
    if task == "classification" and labels and data_labels and list(data_labels) != list(labels):
        from audionets.errors import ConfigError

        raise ConfigError(f"data: the dataset's {len(data_labels)} classes differ from the "
                          f"model's {len(labels)} ({', '.join(labels[:5])}...); evaluate on "
                          "the data the model was trained for")
    model = model.to(device).eval()
    count = len(dataset) if limit is None else min(limit, len(dataset))
    bar = progress_bar(count, "evaluate", progress, unit="file")
    rows, last_log = [], time.monotonic()
    for index in range(count):
        rows.append(evaluate_item(model, task, dataset[index], device, sdr=sdr))
        bar.update(1)
        if not progress and time.monotonic() - last_log > LOG_INTERVAL_S:
            last_log = time.monotonic()  # no terminal (a batch job): a line now and then
            log.info("evaluate: %d/%d files", index + 1, count)
    bar.close()
    names = tuple(n for n in METRICS[task] if sdr or not n.startswith("sdr"))
    summary: dict[str, Any] = summarize(rows, names)
    notes: dict[str, int] = {}
    for row in rows:
        if row.get("note"):
            notes[row["note"]] = notes.get(row["note"], 0) + 1
    result = EvalResult(task, rows, summary, labels, notes=notes)
    if task == "classification":
        classes = len(labels) if labels else 1 + max(
            [max(r["label"], r["prediction"]) for r in rows], default=0)
        matrix = np.zeros((classes, classes), dtype=np.int64)
        for row in rows:
            matrix[row["label"], row["prediction"]] += 1
        result.confusion = matrix
        summary["accuracy"] = summary.pop("correct")
        if labels:
            for row in rows:
                row["label"], row["prediction"] = labels[row["label"]], labels[row["prediction"]]
    if notes:
        summary["notes"] = notes
    return result


def eval_data_section(spec: str, overrides: list[str]) -> dict[str, Any]:
    """The ``data`` section ``spec`` names: a recipe config's, or ``{"name": spec}`` for a
    dataset name, with ``data.key=value`` overrides applied; its roots are checked."""
    from audionets.errors import ConfigError
    from audionets.registry import DATASETS
    from audionets.training.config import apply_override, check_data_roots, load_config
    from audionets.training.trainer import load_registries

    load_registries()
    if Path(spec).is_file():
        data = load_config(spec, overrides).data
    elif spec in DATASETS:
        tree: dict[str, Any] = {"data": {"name": spec}}
        for override in overrides:
            if not override.startswith("data."):
                raise ConfigError(f"override {override!r}: with a dataset name only data.KEY=VALUE "
                                  "overrides apply (e.g. data.root=/data/x)")
            apply_override(tree, override)
        data = tree["data"]
        check_data_roots(data)
    else:
        raise ConfigError(f"--data {spec}: neither a config file nor a dataset name; datasets: "
                          f"{', '.join(DATASETS.names())}")
    return data


def build_eval_dataset(spec: str, overrides: list[str], split: str,
                       model_config: dict[str, Any]) -> Any:
    """The ``split`` of the data ``spec`` names (see :func:`eval_data_section`), for the model
    of ``model_config`` (a loaded model's config: ``task``, ``sample_rate``, ``model``): the
    data section is resolved with the model as for training, so the data comes at its rate."""
    from audionets.registry import DATASETS
    from audionets.training.config import Config
    from audionets.training.resolve import resolve_config

    data = eval_data_section(spec, overrides)
    config = resolve_config(Config(task=model_config["task"], model=dict(model_config["model"]),
                                   data=data, sample_rate=model_config["sample_rate"]))
    return DATASETS.build(data["name"], _where="data", split=split, **config.data_kwargs(split))


def eval_inputs(spec: str, overrides: list[str], model_source: str) -> list[Path]:
    """What an evaluation reads: the ``--data`` config file, every data root (``data.root``,
    ``data.<split>.root``) and the model's file or folder."""
    from audionets.training.config import SPLITS

    data = eval_data_section(spec, overrides)
    roots = [data.get("root")] + [(data.get(split) or {}).get("root") for split in SPLITS]
    found = [Path(spec)] if Path(spec).is_file() else []
    found += [Path(str(root)).expanduser() for root in roots if root is not None]
    return found + [Path(model_source)]


def format_summary(result: EvalResult) -> str:
    """Human-readable summary (and confusion matrix) for the terminal."""
    lines = [f"{'metric':<10} {'mean':>9} {'median':>9} {'std':>9} {'count':>6}"]
    for name, stats in result.summary.items():
        if name == "notes":
            continue
        if stats["count"] and name == "accuracy":  # of 0/1 values: median and std say nothing
            lines.append(f"{name:<10} {stats['mean']:>9.4f} {'':>9} {'':>9} {stats['count']:>6d}")
        elif stats["count"]:
            lines.append(f"{name:<10} {stats['mean']:>9.4f} {stats['median']:>9.4f} "
                         f"{stats['std']:>9.4f} {stats['count']:>6d}")
        else:
            lines.append(f"{name:<10} {'-':>9} {'-':>9} {'-':>9} {0:>6d}")
    for note, number in result.notes.items():
        lines.append(f"note: {number} file(s) skipped: {note}")
    if result.confusion is not None:
        names = result.labels or [str(i) for i in range(len(result.confusion))]
        width = max(6, *(len(n) for n in names))
        lines.append("confusion matrix (rows: true, columns: predicted)")
        lines.append(" " * width + " " + " ".join(f"{n[:width]:>{width}}" for n in names))
        for name, row in zip(names, result.confusion):
            lines.append(f"{name[:width]:>{width}} " + " ".join(f"{v:>{width}d}" for v in row))
    return "\n".join(lines)


def write_rows_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Per-file rows as CSV (atomically); missing metrics are empty cells."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v))
                         for k, v in row.items()})
    with atomic_write(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")


def write_json(data: dict[str, Any], path: Path) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_confusion(result: EvalResult, csv_path: Path, png_path: Path) -> None:
    """The confusion matrix as CSV (header: predicted labels) and as a PNG heat map."""
    assert result.confusion is not None
    names = result.labels or [str(i) for i in range(len(result.confusion))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["true \\ predicted", *names])
    for name, row in zip(names, result.confusion):
        writer.writerow([name, *row.tolist()])
    with atomic_write(csv_path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.45 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(result.confusion, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max(1, int(result.confusion.max()))
    if len(names) <= 30:
        for (i, j), value in np.ndenumerate(result.confusion):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                    color="white" if value > peak / 2 else "black")
    accuracy = result.summary["accuracy"]["mean"]
    ax.set_title(f"accuracy {accuracy:.3f}" if accuracy is not None else "confusion matrix")
    fig.tight_layout()
    with atomic_write(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)

