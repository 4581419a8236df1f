"""The :class:`Task` interface: a batch becomes a loss and metrics, an item a row of figures.

A task computes its metrics once, in :meth:`Task.score`, for training (:meth:`Task.step`, on
a batch) and for evaluation (:meth:`Task.evaluate_item`, on one item as a batch of one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from audionets.errors import ConfigError

#: a reference whose RMS is below this (about -100 dBFS) counts as silent
SILENCE_RMS = 1e-5


@dataclass
class EvalResult:
    """Rows (one dict per file), the summary, and for classifiers the confusion matrix."""

    task: str
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    labels: list[str] | None = None
    confusion: np.ndarray | None = None
    notes: dict[str, int] = field(default_factory=dict)


class Task:
    """Base class; each task is registered in :data:`audionets.registry.TASKS` by ``name``.

    Its constructor takes the config's ``loss`` section as keyword arguments.
    """

    name: str = ""
    #: keys of a dataset item that the task reads
    item_keys: tuple[str, ...] = ()
    #: metric names :meth:`step` returns (besides ``loss``); logged as ``valid_<name>``, ...
    metric_names: tuple[str, ...] = ()
    #: validation metric the trainer monitors by default
    default_monitor: str = "valid_loss"
    #: per-file metrics of :meth:`evaluate_item`, in the order of a row
    eval_metric_names: tuple[str, ...] = ()
    #: item key of the reference signal; a silent one leaves the item's metrics undefined
    reference_key: str | None = None
    #: the audionets class that runs models of this task (for hints), None when there is none
    runner: str | None = None
    #: the input and output of an exported graph (``name``, ``dtype``, ``shape``: axis names);
    #: None: models of this task are not exported
    export_signature: tuple[dict[str, Any], dict[str, Any]] | None = None

    @classmethod
    def model_attributes(cls, config: dict[str, Any]) -> dict[str, int]:
        """The attributes the task's :attr:`runner` reads off a model (``num_sources``,
        ``num_classes``), from the model's saved ``config``: an exported graph run outside
        PyTorch has none of its own. Nothing by default."""
        return {}

    def all_metric_names(self) -> tuple[str, ...]:
        return ("loss",) + self.metric_names

    # ------------------------------------------------------------------ training
    def forward(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """The model's output for ``batch``, checked to fit the references (ConfigError)."""
        raise NotImplementedError

    def score(self, outputs: torch.Tensor,
              batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(loss per item [B], differentiable; {metric: per-item values [B]}, detached)``."""
        raise NotImplementedError

    def reduce(self, loss: torch.Tensor) -> torch.Tensor:
        """The batch loss (a scalar) from the per-item losses ``[B]``: their mean."""
        return loss.mean()

    def step(self, model: nn.Module,
             batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return ``(loss scalar, {metric: per-item values [B]})``; the dict includes ``loss``."""
        loss, metrics = self.score(self.forward(model, batch), batch)
        return self.reduce(loss), {"loss": loss.detach(), **metrics}

    @staticmethod
    def batch_size(batch: dict[str, Any]) -> int:
        """Items in a batch (the first dimension of its first tensor)."""
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                return int(value.shape[0])
        raise ValueError("batch holds no tensors")

    # ------------------------------------------------------------------ data
    def check_items(self, dataset: Any, where: str) -> None:
        """ConfigError when the items of ``dataset`` lack what the task reads (a separation
        model pointed at a classification dataset, ...); checks the first item."""
        if len(dataset) == 0:
            return
        item = dataset[0]
        if any(key not in item for key in self.item_keys):
            raise ConfigError(
                f"{where}: gives items with {', '.join(sorted(item))}; a {self.name} model "
                f"needs {', '.join(self.item_keys)}: choose a {self.name} dataset"
            )

    def dataset_labels(self, dataset: Any, where: str) -> list[str] | None:
        """The class names a model of this task learns from ``dataset``; None: no classes."""
        return None

    def check_labels(self, labels: list[str] | None, dataset: Any) -> None:
        """ConfigError when a model with class names ``labels`` cannot be scored on
        ``dataset`` (classification: other classes); nothing to check by default."""

    # ------------------------------------------------------------------ evaluation
    def evaluation_metrics(self, sdr: bool = True) -> tuple[str, ...]:
        """The per-file metrics an evaluation summarises (``sdr``: separation's BSS Eval)."""
        return self.eval_metric_names

    @torch.no_grad()
    def evaluate_item(self, model: nn.Module, item: dict[str, Any], device: torch.device,
                      sdr: bool = True) -> dict[str, Any]:
        """Figures of one dataset item: ``id``, then :attr:`eval_metric_names`; a ``note``
        explains gaps (silent reference, non-finite value) and their metrics are None."""
        row: dict[str, Any] = {"id": str(item.get("id", ""))}
        if self.reference_key is not None and _silent(item[self.reference_key]):
            return {**row, **dict.fromkeys(self.eval_metric_names), "note": "reference is silent"}
        batch = {key: _one(value, device) for key, value in item.items()}
        outputs = self.forward(model, batch)
        _, metrics = self.score(outputs, batch)
        row.update(self.item_figures(outputs, batch, metrics, sdr))
        return _finite(row, self.eval_metric_names)

    def item_figures(self, outputs: torch.Tensor, batch: dict[str, Any],
                     metrics: dict[str, torch.Tensor], sdr: bool) -> dict[str, Any]:
        """The row entries of one item (a batch of one) from its :meth:`score` metrics."""
        raise NotImplementedError

    def finish(self, result: EvalResult) -> None:
        """Complete ``result`` once every item is evaluated; nothing to add by default."""


def _one(value: Any, device: torch.device) -> Any:
    """A dataset item's tensor as a batch of one on ``device`` (real values as float32)."""
    if not isinstance(value, torch.Tensor):
        return value
    value = value.to(device)[None]
    return value.float() if value.is_floating_point() else value


def _silent(reference: torch.Tensor) -> bool:
    """True when any channel/source of ``reference [..., T]`` is silent."""
    rms = reference.double().pow(2).mean(dim=-1).sqrt()
    return bool((rms < SILENCE_RMS).any())


def _finite(row: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Replace non-finite metric values by None with a note (never NaN in a summary)."""
    bad = [n for n in names if row.get(n) is not None and not math.isfinite(row[n])]
    for name in bad:
        row[name] = None
    if bad:
        note = "non-finite " + ", ".join(bad)
        row["note"] = f"{row['note']}; {note}" if row.get("note") else note
    return row
