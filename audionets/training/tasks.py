"""Tasks: how a batch becomes a loss and per-item metrics, one class per kind of model.

A task's :meth:`Task.step` runs the model on a batch dict (see ARCHITECTURE.md for the item
keys) and returns the scalar training loss and a dict of per-item metric tensors ``[B]``
(summed and counted by the trainer, so epoch means weight every item equally, also under DDP).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from audionets.errors import ConfigError
from audionets.registry import check_kwargs
from audionets.serialization.checkpoints import default_monitor_mode


class Task:
    """Base class. Subclasses set ``name``, ``metric_names``, ``default_monitor``."""

    name: str = ""
    #: keys of a dataset item that ``step`` reads
    item_keys: tuple[str, ...] = ()
    #: metric names ``step`` returns (besides ``loss``); validation logs them as ``valid_<name>``
    metric_names: tuple[str, ...] = ()
    #: validation metric the trainer monitors by default
    default_monitor: str = "valid_loss"

    def all_metric_names(self) -> tuple[str, ...]:
        return ("loss",) + self.metric_names

    @staticmethod
    def higher_is_better(metric: str) -> bool:
        """Whether a larger value of ``metric`` (with or without a split prefix) is better."""
        return default_monitor_mode(metric) == "max"

    def step(self, model: nn.Module,
             batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return ``(loss scalar, {metric: per-item values [B]})``; the dict includes ``loss``."""
        raise NotImplementedError

    @staticmethod
    def batch_size(batch: dict[str, Any]) -> int:
        """Items in a batch (the first dimension of its first tensor)."""
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                return int(value.shape[0])
        raise ValueError("batch holds no tensors")


class ClassificationTask(Task):
    """Cross-entropy on ``logits = model(wav[B, T])`` vs ``label[B]``; metric accuracy."""

    name = "classification"
    item_keys = ("wav", "label")
    metric_names = ("accuracy",)
    default_monitor = "valid_accuracy"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ConfigError(f"loss.label_smoothing: must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def step(self, model, batch):
        logits = model(batch["wav"])  # [B, C]
        labels = batch["label"].long()
        per_item = F.cross_entropy(
            logits.float(), labels, label_smoothing=self.label_smoothing, reduction="none"
        )
        with torch.no_grad():
            correct = (logits.argmax(dim=-1) == labels).float()
        return per_item.mean(), {"loss": per_item.detach(), "accuracy": correct}


class SeparationTask(Task):
    """Permutation-invariant negative SI-SNR on ``model(mix[B, T]) -> [B, S, T]``.

    ``loss.threshold`` (dB, e.g. -30 as in SpeechBrain's SepFormer recipes) drops the items whose
    loss is already below it from the batch mean, so that easy examples stop dominating; when
    every item is below it the plain mean is used. Metrics: ``si_snr`` of the best permutation
    and ``si_snri`` (its improvement over the mixture), both in dB.
    """

    name = "separation"
    item_keys = ("mix", "sources")
    metric_names = ("si_snr", "si_snri")
    default_monitor = "valid_si_snri"

    def __init__(self, threshold: float | None = None) -> None:
        if threshold is not None and not isinstance(threshold, (int, float)):
            raise ConfigError(f"loss.threshold: expected a number or null, got {threshold!r}")
        self.threshold = None if threshold is None else float(threshold)

    def step(self, model, batch):
        from audionets.metrics import pit_si_snr_loss, si_snr, thresholded_mean

        mix, sources = batch["mix"], batch["sources"]  # [B, T], [B, S, T]
        estimates = model(mix)
        if estimates.shape != sources.shape:
            raise ConfigError(
                f"model output {tuple(estimates.shape)} does not match the sources "
                f"{tuple(sources.shape)}; set model.num_sources to the dataset's number of sources"
            )
        per_item = pit_si_snr_loss(estimates.float(), sources)  # [B], = -SI-SNR in dB
        loss = thresholded_mean(per_item, self.threshold)
        with torch.no_grad():
            best = -per_item.detach()
            baseline = si_snr(mix.unsqueeze(1).expand_as(sources).float(), sources).mean(dim=-1)
        return loss, {"loss": per_item.detach(), "si_snr": best, "si_snri": best - baseline}


class ReconstructionTask(Task):
    """L1 or MSE between ``model(wav[B, T]) -> [B, T]`` and ``wav``; metric SNR in dB."""

    name = "reconstruction"
    item_keys = ("wav",)
    metric_names = ("snr",)
    default_monitor = "valid_snr"

    def __init__(self, kind: str = "l1") -> None:
        if kind not in ("l1", "mse"):
            raise ConfigError(f"loss.kind: {kind!r} is not one of: l1, mse")
        self.kind = kind

    def step(self, model, batch):
        from audionets.metrics import snr

        wav = batch["wav"]
        output = model(wav).float()
        if output.shape != wav.shape:
            raise ConfigError(
                f"model output {tuple(output.shape)} does not match the input {tuple(wav.shape)}"
            )
        error = (output - wav).abs() if self.kind == "l1" else (output - wav) ** 2
        per_item = error.mean(dim=-1)
        with torch.no_grad():
            quality = snr(output.detach(), wav)
        return per_item.mean(), {"loss": per_item.detach(), "snr": quality}


TASK_CLASSES: dict[str, type[Task]] = {
    cls.name: cls for cls in (ClassificationTask, SeparationTask, ReconstructionTask)
}


def check_items(task: str, dataset: Any, where: str) -> None:
    """ConfigError when the items of ``dataset`` lack what a ``task`` model reads (a
    separation model pointed at a classification dataset, ...); checks the first item."""
    if len(dataset) == 0:
        return
    item = dataset[0]
    needed = TASK_CLASSES[task].item_keys
    if any(key not in item for key in needed):
        raise ConfigError(
            f"{where}: gives items with {', '.join(sorted(item))}; a {task} model "
            f"needs {', '.join(needed)}: choose a {task} dataset"
        )


def build_task(name: str, loss: dict[str, Any] | None = None) -> Task:
    """Build the task ``name`` with its ``loss`` config (ConfigError for unknown keys)."""
    try:
        cls = TASK_CLASSES[name]
    except KeyError:
        raise ConfigError(f"task: {name!r} is not one of: {', '.join(TASK_CLASSES)}") from None
    loss = dict(loss or {})
    check_kwargs(cls.__init__, loss, where="loss")
    return cls(**loss)
