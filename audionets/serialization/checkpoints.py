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


#: how the best checkpoint is chosen (``trainer.checkpoint_rule``): ``best`` is the one of the
#: best validation value; ``one_se`` the latest one whose value is within one standard error of
#: the best value (the best of a small validation split is often a lucky early checkpoint)
RULES = ("best", "one_se")


def rank_best(entries: list[dict[str, Any]], mode: str,
              rule: str = "best") -> list[dict[str, Any]]:
    """Best-checkpoint entries, the chosen one first, then the others by their ``value`` under
    ``mode`` (max or min); ``rule`` is one of :data:`RULES`.

    Under ``one_se`` the chosen entry is the latest (by ``epoch``, then ``step``) whose value is
    within the best value's standard error (its ``se``) of the best value. The one definition
    of "best", used both while training (:class:`BestCheckpoints`) and when a finished
    experiment is loaded (:func:`find_best_checkpoint`).
    """
    by_value = sorted(entries, key=lambda e: e["value"], reverse=mode == "max")
    if rule == "best" or not by_value:
        return by_value
    top = by_value[0]
    sign = 1.0 if mode == "max" else -1.0
    bound = sign * top["value"] - top.get("se", 0.0)
    within = [e for e in by_value if sign * e["value"] >= bound]
    chosen = max(within, key=lambda e: (e.get("epoch", 0), e.get("step", 0)))
    return [chosen] + [e for e in by_value if e is not chosen]


class BestCheckpoints:
    """Keeps the ``keep`` best checkpoint files by a monitored value (``mode`` max or min), and
    the one ``rule`` chooses (see :func:`rank_best`) when that is not among them.

    Entries are ``{"path": file name, "value": float, "se": float, "epoch": int, "step": int}``,
    stored in every checkpoint (``state["best"]``) so that a resumed run keeps managing the same
    files. The file of the best value is always kept, so the ``one_se`` bound needs no other
    record: a new checkpoint is either chosen itself (it is the latest) or leaves the choice and
    the bound as they were.
    """

    def __init__(self, folder: Path, keep: int, mode: str,
                 entries: list[dict[str, Any]] | None = None, rule: str = "best") -> None:
        self.folder = Path(folder)
        self.keep = keep
        self.mode = mode
        self.rule = rule
        self.entries = [dict(e) for e in (entries or []) if (self.folder / e["path"]).is_file()]

    def _kept(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The chosen entry and the ``keep`` best by value, the chosen first."""
        chosen = rank_best(entries, self.mode, self.rule)[0]
        by_value = rank_best(entries, self.mode)[: self.keep]
        return [chosen] + [e for e in by_value if e is not chosen]

    def add(self, state: dict[str, Any], value: float, epoch: int, monitor: str,
            se: float = 0.0, step: int = 0) -> Path | None:
        """Save ``state`` as a best checkpoint if ``value`` (of standard error ``se``, at
        ``epoch`` and ``step``) is in the top ``keep`` or is the chosen one now; prune the
        files no longer kept."""
        if not np.isfinite(value) or self.keep <= 0:
            return None
        name = f"best-epoch{epoch:03d}-{monitor}={value:.4f}.pt"
        entry = {"path": name, "value": float(value), "se": float(se), "epoch": epoch,
                 "step": step}
        kept = self._kept(self.entries + [entry])
        if not any(e is entry for e in kept):
            return None
        dropped = [e for e in self.entries if not any(e is k for k in kept)]
        self.entries = kept
        state["best"] = self.entries
        save_checkpoint(state, self.folder / name)
        for old in dropped:
            if old["path"] != name:  # a resumed run may save the same name again
                (self.folder / old["path"]).unlink(missing_ok=True)
        return self.folder / name

    def best_path(self) -> Path | None:
        """The chosen checkpoint's file; None before the first."""
        if not self.entries:
            return None
        return self.folder / rank_best(self.entries, self.mode, self.rule)[0]["path"]


def _recorded_entry(path: Path) -> tuple[dict[str, Any], tuple[str, str]] | None:
    """A best checkpoint's own entry and the run's (monitor mode, checkpoint rule) as the
    trainer recorded them in the file (checkpoints of earlier versions: rule ``best``).

    None for a file that does not record them (one not written by ``audionets train``).
    """
    state = load_checkpoint(path, mmap=True)
    monitor = state.get("monitor")
    own = [e for e in state.get("best") or [] if e.get("path") == path.name]
    if not isinstance(monitor, dict) or monitor.get("mode") not in ("max", "min") or not own:
        return None
    return {**own[0], "path": path.name}, (monitor["mode"], monitor.get("rule", "best"))


def _entry_from_name(path: Path) -> tuple[dict[str, Any], tuple[str, str]] | None:
    """The entry, default mode and rule ``best`` read from a ``best-epochNNN-METRIC=VALUE.pt``
    name."""
    epoch, _, metric_value = path.stem.removeprefix("best-epoch").partition("-")
    metric, _, value = metric_value.rpartition("=")
    try:
        entry = {"path": path.name, "value": float(value), "epoch": int(epoch)}
    except ValueError:
        return None
    return entry, (default_monitor_mode(metric), "best")


def find_best_checkpoint(folder: str | Path) -> Path | None:
    """The ``best-*.pt`` checkpoint in ``folder`` that :class:`BestCheckpoints` chose.

    Each best checkpoint records its exact value, standard error and position, and the run's
    monitor mode and checkpoint rule (``state["best"]``, ``state["monitor"]``), so
    ``trainer.monitor_mode`` and ``trainer.checkpoint_rule`` are honoured; only files that lack
    the record fall back to their name, :func:`default_monitor_mode` and rule ``best``. Returns
    None when there is no best checkpoint; CheckpointError when the files disagree on the mode
    or the rule (two runs mixed).
    """
    folder = Path(folder)
    found = [_recorded_entry(path) or _entry_from_name(path)
             for path in sorted(folder.glob("best-epoch*-*=*.pt"))]
    found = [item for item in found if item is not None]
    if not found:
        return None
    for what, index in (("monitor mode", 0), ("checkpoint rule", 1)):
        values = {how[index] for _, how in found}
        if len(values) > 1:
            raise CheckpointError(f"{folder}: best checkpoints disagree on the {what} "
                                  f"({' vs '.join(sorted(values))}); keep one run's best-*.pt "
                                  "files or pass a checkpoint file")
    mode, rule = found[0][1]
    best = BestCheckpoints(folder, len(found), mode, [entry for entry, _ in found], rule)
    return best.best_path()
