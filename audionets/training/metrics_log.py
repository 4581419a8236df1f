"""Per-epoch metric logs of an experiment: ``metrics.csv``, ``curves.png``, TensorBoard.

One row per epoch with ``epoch``, ``step``, ``lr``, ``seconds``, ``train_*``, ``valid_*`` columns.
The CSV is rewritten atomically on every row, so a killed run never leaves a torn file, and a
resumed run drops the rows of epochs its checkpoint does not include. TensorBoard event files go
to ``experiment_dir/tensorboard`` when the ``tensorboard`` package is installed (the
``tensorboard`` extra); a log line says whether they are written.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path
from typing import Any

from audionets.utils import atomic_write

log = logging.getLogger("audionets.train")

CSV_NAME = "metrics.csv"
PLOT_NAME = "curves.png"


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a ``metrics.csv`` as dicts of floats (empty cells become NaN)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [
            {k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]


class MetricsLogger:
    """Appends epoch rows to ``metrics.csv``, mirrors them to TensorBoard, draws ``curves.png``."""

    def __init__(self, folder: str | Path, resume_epoch: int | None = None,
                 tensorboard: bool = True) -> None:
        self.folder = Path(folder)
        self.rows = read_metrics(self.folder / CSV_NAME) if resume_epoch is not None else []
        if resume_epoch is not None:
            self.rows = [r for r in self.rows if r.get("epoch", math.inf) <= resume_epoch]
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # torch's module needs the tensorboard package
                log.info("TensorBoard logging is off: the tensorboard package is not installed "
                         "(pip install 'audionets[tensorboard]' turns it on)")
            else:
                self._writer = SummaryWriter(log_dir=str(self.folder / "tensorboard"))
                log.info("TensorBoard logs: %s", self.folder / "tensorboard")

    def log(self, row: dict[str, Any]) -> None:
        """Add one epoch row (numbers only) and rewrite ``metrics.csv``."""
        clean = {k: float(v) for k, v in row.items()}
        self.rows.append(clean)
        self._write_csv()
        if self._writer is not None:
            step = int(clean.get("step", len(self.rows)))  # optimizer steps: partial epochs too
            for key, value in clean.items():
                if key not in ("epoch", "step"):
                    self._writer.add_scalar(key.replace("_", "/", 1), value, step)
            self._writer.flush()

    def _write_csv(self) -> None:
        columns: list[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _fmt(v) for k, v in row.items()})
        with atomic_write(self.folder / CSV_NAME) as tmp:
            tmp.write_text(buffer.getvalue(), encoding="utf-8")

    def plot(self) -> Path | None:
        """Draw train/valid curves of every metric to ``curves.png``; None when no rows yet."""
        if not self.rows:
            return None
        return plot_curves(self.rows, self.folder / PLOT_NAME)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _fmt(value: float) -> str:
    if math.isnan(value):
        return ""
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else f"{value:.6g}"


def plot_curves(rows: list[dict[str, float]], path: Path) -> Path:
    """One panel per metric (train and valid lines over epochs) plus the learning rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: list[str] = []
    for row in rows:
        for key in row:
            for prefix in ("train_", "valid_"):
                if key.startswith(prefix) and key[len(prefix):] not in names:
                    names.append(key[len(prefix):])
    panels = names + (["lr"] if any("lr" in r for r in rows) else [])
    cols = min(3, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
    for ax, name in zip(axes.flat, panels):
        if name == "lr":
            ax.plot(epochs, [r.get("lr", math.nan) for r in rows], marker="o")
            ax.set_yscale("log")
        else:
            for prefix in ("train_", "valid_"):
                values = [r.get(prefix + name, math.nan) for r in rows]
                if not all(math.isnan(v) for v in values):
                    ax.plot(epochs, values, marker="o", label=prefix.rstrip("_"))
            ax.legend()
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
