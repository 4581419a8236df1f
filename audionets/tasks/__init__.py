"""Tasks, registered in :data:`audionets.registry.TASKS`: what a model of each kind is scored on.

A task (classification, separation, reconstruction) owns its loss, its metrics and the
evaluation of an item: :meth:`~audionets.tasks.base.Task.step` turns a batch into the training
loss and per-item metrics, :meth:`~audionets.tasks.base.Task.evaluate_item` one dataset item
into a row of figures, both from the same :meth:`~audionets.tasks.base.Task.score`.
"""

from typing import Any

from audionets.registry import TASKS
from audionets.tasks.base import EvalResult, Task
from audionets.tasks.classification import ClassificationTask
from audionets.tasks.reconstruction import ReconstructionTask
from audionets.tasks.separation import SeparationTask

__all__ = ["TASKS", "ClassificationTask", "EvalResult", "ReconstructionTask", "SeparationTask",
           "Task", "build_task"]


def build_task(name: str, loss: dict[str, Any] | None = None) -> Task:
    """The task ``name`` with its ``loss`` config (ConfigError for an unknown name or key)."""
    return TASKS.build(name, _where="loss", **dict(loss or {}))
