"""Where a training run is, and the checkpoint that holds it.

:class:`TrainState` is everything a resumed run needs to continue exactly, besides the weights,
the optimizer / scheduler / scaler state dicts and the RNG states: the position (epochs done,
batches of the current epoch done, optimizer steps), the train metric totals of the unfinished
epoch, and whether that position was validated and saved. :func:`checkpoint_dict` and
:func:`read_checkpoint` write and read the whole checkpoint, one key each, so that what
``last.pt`` and the ``best-*.pt`` files hold is written in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import torch
from torch import nn

from audionets._version import __version__
from audionets.errors import CheckpointError, first_line
from audionets.serialization.checkpoints import capture_rng, load_checkpoint, restore_rng
from audionets.serialization.weights import load_weights
from audionets.training.metric_sums import MetricTotals


@dataclass
class TrainState:
    """The position of a run and what it has summed so far in its unfinished epoch.

    The run trains epoch ``epoch`` (0-based: ``epoch`` epochs are complete) and has trained its
    first ``batch_in_epoch`` batches; ``batch_in_epoch`` equal to the epoch's batches means it
    is trained but not yet validated (a run stopped while validating). ``train_totals`` are the
    train metrics of those batches, summed over every process. ``validated`` says whether the
    metrics row and the checkpoints of this position are written.
    """

    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    train_totals: MetricTotals = field(default_factory=MetricTotals)
    validated: bool = True

    def epoch_trained(self, batches_per_epoch: int) -> bool:
        """Whether every batch of the current epoch is trained."""
        return self.batch_in_epoch >= batches_per_epoch

    def next_epoch(self) -> None:
        """Count the current epoch as done: the next one starts at its first batch, from zero."""
        self.epoch += 1
        self.batch_in_epoch = 0
        self.train_totals = MetricTotals()

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint keys of the state (plain values only, for ``weights_only`` loading)."""
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step,
                "train_partial": self.train_totals.to_dict(), "validated": self.validated}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainState":
        """Inverse of :meth:`to_dict`. Checkpoints of earlier versions lack ``batch_in_epoch``,
        ``validated`` or ``train_partial`` (a run saved only at epoch ends) and hold the
        partial sums in their flat form; both read as they meant."""
        return cls(epoch=int(data["epoch"]), batch_in_epoch=int(data.get("batch_in_epoch", 0)),
                   step=int(data["step"]),
                   train_totals=MetricTotals.from_dict(data.get("train_partial")),
                   validated=bool(data.get("validated", True)))


class Checkpoint(TypedDict):
    """A training checkpoint (``last.pt``, ``best-*.pt``): tensors and plain values only."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    scaler: dict[str, Any]
    epoch: int  # TrainState.to_dict()
    batch_in_epoch: int
    step: int
    train_partial: dict[str, Any]
    validated: bool
    rng: dict[str, Any]  # serialization.checkpoints.capture_rng
    config: dict[str, Any]  # the resolved config (hub.load_model rebuilds the model from it)
    labels: list[str] | None
    best: list[dict[str, Any]]  # BestCheckpoints.entries
    monitor: dict[str, str]  # {"name": metric, "mode": "max" | "min", "rule": "best" | "one_se"}
    audionets_version: str


@dataclass
class Trainables:
    """What the optimizer changes: the model and the optimizer, scheduler and scaler states."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any  # a torch.optim.lr_scheduler or None
    scaler: torch.amp.GradScaler


def checkpoint_dict(parts: Trainables, state: TrainState, config: dict[str, Any],
                    labels: list[str] | None, best: list[dict[str, Any]],
                    monitor: tuple[str, str, str]) -> Checkpoint:
    """The checkpoint of ``parts`` at ``state``, with this process's RNG states."""
    return Checkpoint(
        model=parts.model.state_dict(),
        optimizer=parts.optimizer.state_dict(),
        scheduler=parts.scheduler.state_dict() if parts.scheduler is not None else None,
        scaler=parts.scaler.state_dict(),
        **state.to_dict(),
        rng=capture_rng(),
        config=config,
        labels=labels,
        best=list(best),
        monitor=dict(zip(("name", "mode", "rule"), monitor)),
        audionets_version=__version__,
    )


def read_checkpoint(path: Path, parts: Trainables,
                    device: torch.device) -> tuple[TrainState, list[dict[str, Any]]]:
    """Load ``path`` into ``parts``, restore the RNG states; return the state and the best
    entries. CheckpointError when the checkpoint does not fit (another config)."""
    saved = load_checkpoint(path, map_location=device)
    try:
        load_weights(parts.model, saved["model"], str(path))  # names the first misfit
        parts.optimizer.load_state_dict(saved["optimizer"])
        if parts.scheduler is not None and saved.get("scheduler") is not None:
            parts.scheduler.load_state_dict(saved["scheduler"])
        if saved.get("scaler"):
            parts.scaler.load_state_dict(saved["scaler"])
        state = TrainState.from_dict(saved)
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        first = first_line(err)
        raise CheckpointError(f"{path}: does not fit this config ({first[:200]}); resume with "
                              "the config the run was started with") from None
    restore_rng(saved["rng"])
    return state, list(saved.get("best") or [])
