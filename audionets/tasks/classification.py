"""Classification: ``logits = model(wav[B, T]) -> [B, C]`` against ``label[B]``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from audionets.errors import ConfigError
from audionets.registry import TASKS
from audionets.tasks.base import EvalResult, Task


@TASKS.register("classification")
class ClassificationTask(Task):
    """Cross-entropy (with ``loss.label_smoothing``); metric accuracy.

    An evaluation row holds the true ``label``, the ``prediction`` and ``correct`` (1 or 0, the
    item's accuracy); the summary calls their mean ``accuracy`` and the result carries the
    confusion matrix (rows: true class, columns: predicted class).
    """

    name = "classification"
    item_keys = ("wav", "label")
    metric_names = ("accuracy",)
    default_monitor = "valid_accuracy"
    eval_metric_names = ("correct",)
    runner = "Classifier"
    export_signature = ({"name": "wav", "dtype": "float32", "shape": ["batch", "time"]},
                        {"name": "logits", "dtype": "float32", "shape": ["batch", "classes"]})

    @classmethod
    def model_attributes(cls, config):
        labels = config.get("labels")
        return {"num_classes": len(labels)} if labels else {}

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ConfigError(f"loss.label_smoothing: must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, model, batch):
        return model(batch["wav"])  # [B, C]

    def score(self, outputs, batch):
        labels = batch["label"].long()
        loss = F.cross_entropy(outputs.float(), labels, label_smoothing=self.label_smoothing,
                               reduction="none")
        with torch.no_grad():
            correct = (outputs.argmax(dim=-1) == labels).float()
        return loss, {"accuracy": correct}

    def dataset_labels(self, dataset: Any, where: str) -> list[str]:
        labels = getattr(dataset, "labels", None)
        if labels is None:
            raise ConfigError(f"{where}: the dataset has no .labels; a classification dataset "
                              "must list its class names")
        return [str(label) for label in labels]

    def check_labels(self, labels, dataset):
        data_labels = getattr(dataset, "labels", None)
        if labels and data_labels and list(data_labels) != list(labels):
            raise ConfigError(f"data: the dataset's {len(data_labels)} classes differ from the "
                              f"model's {len(labels)} ({', '.join(labels[:5])}...); evaluate on "
                              "the data the model was trained for")

    def item_figures(self, outputs, batch, metrics, sdr):
        return {"label": int(batch["label"][0]), "prediction": int(outputs[0].argmax()),
                "correct": float(metrics["accuracy"][0])}

    def finish(self, result: EvalResult) -> None:
        """The confusion matrix, ``accuracy`` in the summary, class names in the rows."""
        rows, labels = result.rows, result.labels
        classes = len(labels) if labels else 1 + max(
            [max(r["label"], r["prediction"]) for r in rows], default=0)
        matrix = np.zeros((classes, classes), dtype=np.int64)
        for row in rows:
            matrix[row["label"], row["prediction"]] += 1
        result.confusion = matrix
        result.summary["accuracy"] = result.summary.pop("correct")
        if labels:
            for row in rows:
                row["label"], row["prediction"] = labels[row["label"]], labels[row["prediction"]]
