"""Every task's figures stay what they were: metrics.csv, test_metrics.json and ``evaluate``.

A tiny model of each task is trained for two epochs on in-test data and evaluated; the metric
names (and their order) must equal, and the values match, those recorded in
``tests/data/task_figures.json`` with the code before the tasks owned their metrics (commit
"figures of every task recorded before the task registry"). Values are compared to 1e-4
(relative and absolute): other CPUs round differently, a changed formula moves them far more.

Run ``python tests/test_task_figures.py`` to print the figures of the installed code as JSON.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from audionets.registry import DATASETS
from audionets.training.config import config_from_dict, load_config
from audionets.training.evaluate import evaluate
from audionets.training.metrics_log import read_metrics
from audionets.training.trainer import build_model, train

RECORDED = Path(__file__).parent / "data" / "task_figures.json"
RATE, LENGTH = 8000, 800  # longer than BSS Eval's 512-sample filter: SDR is defined
LABELS = ["low", "high"]


def _signal(gen: torch.Generator, label: int = 0) -> torch.Tensor:
    """``[LENGTH]`` noise, low-passed for label 0 (a moving average), white for label 1."""
    noise = torch.randn(LENGTH + 7, generator=gen)
    if label == 0:
        noise = noise.unfold(0, 8, 1).mean(-1) * 2
    return 0.3 * noise[:LENGTH]


class _Items(torch.utils.data.Dataset):
    """Deterministic items of one task (``seed`` differs per split); no global RNG draws."""

    def __init__(self, split: str = "train", sample_rate: int = RATE,
                 segment_seconds: float | None = None, num_examples: int = 8) -> None:
        self.num_examples = num_examples
        self.seed = {"train": 0, "valid": 100, "test": 200}[split]

    def __len__(self) -> int:
        return self.num_examples

    def generator(self, index: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed + index)


@DATASETS.register("test_figures_classes")
class _Classes(_Items):
    labels = LABELS

    def __getitem__(self, index: int) -> dict:
        label = index % 2
        return {"wav": _signal(self.generator(index), label), "label": torch.tensor(label),
                "id": f"c{self.seed + index}"}


@DATASETS.register("test_figures_mixtures")
class _Mixtures(_Items):
    def __getitem__(self, index: int) -> dict:
        gen = self.generator(index)
        sources = torch.stack([_signal(gen, 0), 0.5 * _signal(gen, 1)])
        return {"mix": sources.sum(0), "sources": sources, "id": f"m{self.seed + index}"}


@DATASETS.register("test_figures_signals")
class _Signals(_Items):
    def __getitem__(self, index: int) -> dict:
        return {"wav": _signal(self.generator(index), index % 2), "id": f"s{self.seed + index}"}


MODELS = {
    "classification": {"name": "td_cnn", "channels": [8, 8], "kernel_sizes": [40, 3],
                       "strides": [4, 1], "pool": 4},
    "separation": {"name": "sepformer", "encoder_channels": 8, "d_model": 8, "chunk_size": 10,
                   "num_blocks": 1, "intra_layers": 1, "inter_layers": 1, "nhead": 2,
                   "d_ffn": 16},
    "reconstruction": {"name": "conv_autoencoder", "channels": [4, 8], "kernel_sizes": 4,
                       "strides": 2},
}
DATA = {"classification": "test_figures_classes", "separation": "test_figures_mixtures",
        "reconstruction": "test_figures_signals"}
SHORT = torch.stack([torch.linspace(0, 30, 400).sin(), 0.5 * torch.linspace(0, 7, 400).cos()])
#: items evaluated after the test split: a silent reference, and one too short for SDR
EXTRA = {
    "classification": [],
    "separation": [
        {"mix": torch.zeros(LENGTH), "sources": torch.zeros(2, LENGTH), "id": "silent"},
        {"mix": SHORT.sum(0), "sources": SHORT, "id": "short"},
    ],
    "reconstruction": [{"wav": torch.zeros(LENGTH), "id": "silent"}],
}


def task_figures(task: str, folder: Path) -> dict:
    """metrics.csv rows (without the seconds an epoch took), test_metrics.json and the
    evaluation of the trained ``task`` model on the test split plus :data:`EXTRA`."""
    config = config_from_dict({
        "task": task, "experiment_dir": str(folder / task), "seed": 5, "sample_rate": RATE,
        "model": dict(MODELS[task]), "data": {"name": DATA[task]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "trainer": {"max_epochs": 2, "batch_size": 4, "device": "cpu", "keep_best": 1,
                    "progress": False},
    })
    train(config)
    exp = folder / task
    rows = [{k: v for k, v in row.items() if k != "seconds"}
            for row in read_metrics(exp / "metrics.csv")]
    test = json.loads((exp / "test_metrics.json").read_text())
    test["checkpoint"] = Path(test["checkpoint"]).name
    saved = load_config(exp / "config.yaml")
    model = build_model(saved)
    model.load_state_dict(torch.load(exp / "checkpoints" / "last.pt", weights_only=True)["model"])
    data = DATASETS.build(DATA[task], split="test")
    items = [data[i] for i in range(len(data))] + EXTRA[task]
    result = evaluate(model, task, items, labels=saved.labels)
    evaluation = {"rows": result.rows, "summary": result.summary, "notes": result.notes,
                  "confusion": None if result.confusion is None else result.confusion.tolist()}
    return {"metrics_csv": rows, "test_metrics": test, "evaluate": evaluation}


def assert_same(got, want, where: str = "") -> None:
    """Equal structure, keys in the same order, equal strings, ints and None, floats to 1e-4."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), f"{where}: {list(got)}"
        for key in want:
            assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for index, (a, b) in enumerate(zip(got, want)):
            assert_same(a, b, f"{where}[{index}]")
    elif isinstance(want, float):
        assert isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-4,
                                                              abs_tol=1e-4), f"{where}: {got}"
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r} != {want!r}"


@pytest.mark.parametrize("task", list(MODELS))
def test_figures_of_every_task_are_unchanged(task, tmp_path):
    recorded = json.loads(RECORDED.read_text())[task]
    assert_same(json.loads(json.dumps(task_figures(task, tmp_path))), recorded, task)


if __name__ == "__main__":  # print the figures of the installed code (to record them)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        json.dump({task: task_figures(task, Path(tmp)) for task in MODELS}, sys.stdout, indent=1)
