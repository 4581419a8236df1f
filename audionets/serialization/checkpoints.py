"""Training checkpoints: atomic save, safe load (``weights_only=True``), RNG state, best-k.

A checkpoint is a dict of tensors and plain Python values only, so that it loads with
``torch.load(path, weights_only=True)`` (no code runs while loading). What the trainer puts in
it is :class:`audionets.training.state.Checkpoint`; below the trainer, only ``best`` and
``monitor`` are read here (ranking the best files) and ``model``, ``config``, ``labels`` by
:mod:`audionets.hub` (loading the model).
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audionets.errors import CheckpointError, OutputError, first_line
from audionets.utils import atomic_write

LAST = "last.pt"


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically (a reader never sees a partial file);
    OutputError when it cannot be written (a full disk)."""
    with atomic_write(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as err:  # torch.save's C++ writer reports a full disk this way
            first = first_line(err, 120)
            raise OutputError(f"{path}: cannot write ({first}); free disk space or choose "
                              "another experiment_dir") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    mmap: bool = False) -> dict[str, Any]:
    """Load with ``weights_only=True``; CheckpointError if missing, unsafe or corrupt.

    ``mmap=True`` maps the tensors instead of reading them, for a caller that only needs the
    plain values (e.g. ``best`` and ``monitor``).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; check the path or experiment_dir")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        first = first_line(err)
        raise CheckpointError(
            f"{path}: refused to load: not a plain-tensor checkpoint ({first[:160]}); "
            "only load checkpoints you trust and that audionets wrote"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        first = first_line(err)
        raise CheckpointError(
            f"{path}: unreadable checkpoint ({first[:160]}); it may be truncated"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not an audionets checkpoint (expected a dict); pass a "
                              "checkpoint that audionets train wrote")
    return state


def capture_rng() -> dict[str, Any]:
    """RNG states of torch (CPU and CUDA), NumPy and ``random`` as tensors and plain values."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_version),
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    np.random.set_state((
        "MT19937", np_state["keys"].numpy().astype(np.uint32), int(np_state["pos"]),
        int(np_state["has_gauss"]), float(np_state["cached_gaussian"]),
    ))
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(x) for x in py["internal"].tolist()),
                     py["gauss_next"]))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def default_monitor_mode(metric: str) -> str:
    """``min`` for a loss (a name ending in ``loss``), else ``max``: the mode when none is set."""
    return "min" if metric.endswith("loss") else "max"


def rank_best(entries: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """Best-checkpoint entries ordered best first by their ``value`` under ``mode`` (max or min).

    The one definition of "best", used both while training (:class:`BestCheckpoints`) and when
    a finished experiment is loaded (:func:`find_best_checkpoint`).
    """
    return sorted(entries, key=lambda e: e["value"], reverse=mode == "max")


class BestCheckpoints:
    """Keeps the ``keep`` best checkpoint files by a monitored value (``mode`` max or min).

    Entries are ``{"path": file name, "value": float, "epoch": int}``, stored in every
    checkpoint (``state["best"]``) so that a resumed run keeps managing the same files.
    """

    def __init__(self, folder: Path, keep: int, mode: str,
                 entries: list[dict[str, Any]] | None = None) -> None:
        self.folder = Path(folder)
        self.keep = keep
        self.mode = mode
        self.entries = [dict(e) for e in (entries or []) if (self.folder / e["path"]).is_file()]

    def is_candidate(self, value: float) -> bool:
        if not np.isfinite(value) or self.keep <= 0:
            return False
        if len(self.entries) < self.keep:
            return True
        worst = rank_best(self.entries, self.mode)[-1]["value"]
        return value > worst if self.mode == "max" else value < worst

    def add(self, state: dict[str, Any], value: float, epoch: int, monitor: str) -> Path | None:
        """Save ``state`` as a best checkpoint if ``value`` is in the top ``keep``; prune."""
        if not self.is_candidate(value):
            return None
        name = f"best-epoch{epoch:03d}-{monitor}={value:.4f}.pt"
        entry = {"path": name, "value": float(value), "epoch": epoch}
        self.entries = rank_best(self.entries + [entry], self.mode)
        dropped, self.entries = self.entries[self.keep:], self.entries[: self.keep]
        state["best"] = self.entries
        save_checkpoint(state, self.folder / name)
        for entry in dropped:
            (self.folder / entry["path"]).unlink(missing_ok=True)
        return self.folder / name

    def best_path(self) -> Path | None:
        return self.folder / rank_best(self.entries, self.mode)[0]["path"] if self.entries else None


def _recorded_entry(path: Path) -> tuple[dict[str, Any], str] | None:
    """A best checkpoint's own entry and monitor mode as the trainer recorded them in the file.

    None for a file that does not record them (one not written by ``audionets train``).
    """
    state = load_checkpoint(path, mmap=True)
    monitor = state.get("monitor")
    own = [e for e in state.get("best") or [] if e.get("path") == path.name]
    if not isinstance(monitor, dict) or monitor.get("mode") not in ("max", "min") or not own:
        return None
    return {**own[0], "path": path.name}, monitor["mode"]


def _entry_from_name(path: Path) -> tuple[dict[str, Any], str] | None:
    """The entry and default mode read from a ``best-epochNNN-METRIC=VALUE.pt`` name."""
    metric, _, value = path.stem.split("-", 2)[-1].rpartition("=")
    try:
        number = float(value)
    except ValueError:
        return None
    return {"path": path.name, "value": number}, default_monitor_mode(metric)


def find_best_checkpoint(folder: str | Path) -> Path | None:
    """The best ``best-*.pt`` checkpoint in ``folder``, as :class:`BestCheckpoints` ranked it.

    Each best checkpoint records its exact value and the run's monitor mode (``state["best"]``,
    ``state["monitor"]``), so ``trainer.monitor_mode`` is honoured; only files that lack the
    record fall back to their name and :func:`default_monitor_mode`. Returns None when there is
    no best checkpoint; CheckpointError when the files disagree on the mode (two runs mixed).
    """
    folder = Path(folder)
    found = [_recorded_entry(path) or _entry_from_name(path)
             for path in sorted(folder.glob("best-epoch*-*=*.pt"))]
    found = [item for item in found if item is not None]
    if not found:
        return None
    modes = {mode for _, mode in found}
    if len(modes) > 1:
        raise CheckpointError(f"{folder}: best checkpoints disagree on the monitor mode "
                              f"({' vs '.join(sorted(modes))}); keep one run's best-*.pt files "
                              "or pass a checkpoint file")
    best = BestCheckpoints(folder, len(found), modes.pop(), [entry for entry, _ in found])
    return best.best_path()
