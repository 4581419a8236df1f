"""Per-file evaluation of a trained model on a dataset split (``audionets evaluate``).

:func:`evaluate` runs the model on every item (batch size 1, full length) and returns one row
per file plus a summary (mean, median, std, count of each metric). The task of the model
(:mod:`audionets.tasks`) scores each item with the metrics it trains with, and adds:

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
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from audionets.tasks import EvalResult, build_task
from audionets.utils import atomic_write, progress_bar

log = logging.getLogger("audionets.evaluate")
LOG_INTERVAL_S = 60.0


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
    scorer = build_task(task)
    scorer.check_items(dataset, f"dataset {type(dataset).__name__}")
    scorer.check_labels(labels, dataset)
    device = torch.device(device)
    model = model.to(device).eval()
    count = len(dataset) if limit is None else min(limit, len(dataset))
    bar = progress_bar(count, "evaluate", progress, unit="file")
    rows, last_log = [], time.monotonic()
    for index in range(count):
        rows.append(scorer.evaluate_item(model, dataset[index], device, sdr=sdr))
        bar.update(1)
        if not progress and time.monotonic() - last_log > LOG_INTERVAL_S:
            last_log = time.monotonic()  # no terminal (a batch job): a line now and then
            log.info("evaluate: %d/%d files", index + 1, count)
    bar.close()
    summary: dict[str, Any] = summarize(rows, scorer.evaluation_metrics(sdr))
    notes: dict[str, int] = {}
    for row in rows:
        if row.get("note"):
            notes[row["note"]] = notes.get(row["note"], 0) + 1
    result = EvalResult(task, rows, summary, labels, notes=notes)
    scorer.finish(result)
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

