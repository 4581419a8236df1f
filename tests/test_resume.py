"""Exact resume: 4 epochs in one go == 2 epochs + resume + 2 epochs (and from mid-epoch)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from audionets.registry import DATASETS, MODELS
from audionets.serialization.checkpoints import (
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from audionets.training.config import config_from_dict
from audionets.training.metric_sums import MetricTotals
from audionets.training.metrics_log import read_metrics
from audionets.training.state import TrainState
from audionets.training.trainer import train


@DATASETS.register("test_resume_noise")
class NoiseClasses(torch.utils.data.Dataset):
    """Three classes of noise with different levels; every RNG kind perturbs the train items."""

    labels = ["quiet", "medium", "loud"]

    def __init__(self, split: str = "train", sample_rate: int = 8000,
                 num_examples: int = 12) -> None:
        self.split, self.num_examples = split, num_examples

    def __len__(self) -> int:
        return self.num_examples

    def __getitem__(self, index: int) -> dict:
        label = index % 3
        gen = torch.Generator().manual_seed(index + (0 if self.split == "train" else 10_000))
        wav = torch.randn(48, generator=gen) * (0.1 + label)
        if self.split == "train":  # torch, NumPy and random all feed in: all must be restored
            jitter = 0.1 * torch.rand(()) + 0.1 * float(np.random.rand()) + 0.1 * random.random()
            wav = wav * (1 + jitter)
        return {"wav": wav, "label": torch.tensor(label), "id": str(index)}


@MODELS.register("test_resume_net")
class Net(nn.Module):
    def __init__(self, num_classes: int, sample_rate: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.3),
                                 nn.Linear(16, num_classes))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        feats = torch.stack([wav.abs().mean(-1), wav.std(-1), wav.abs().amax(-1)], dim=-1)
        return self.net(feats.log())


def config(tmp_path, name: str, *overrides: str):
    raw = {
        "task": "classification", "experiment_dir": str(tmp_path / name), "seed": 11,
        "sample_rate": 8000, "model": {"name": "test_resume_net"},
        "data": {"name": "test_resume_noise", "valid": {"num_examples": 6}},
        "optimizer": {"name": "adamw", "lr": 0.01, "weight_decay": 0.01},
        "scheduler": {"name": "plateau", "patience": 0, "factor": 0.7},
        "trainer": {"max_epochs": 4, "batch_size": 3, "device": "cpu", "test": False,
                    "keep_best": 1, "monitor": "valid_loss"},
    }
    return config_from_dict(raw, list(overrides))


def assert_same_run(a_dir, b_dir):
    a = load_checkpoint(a_dir / "checkpoints/last.pt")
    b = load_checkpoint(b_dir / "checkpoints/last.pt")
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
    assert a["scheduler"] == b["scheduler"]
    assert a["best"] == b["best"]  # the same best-checkpoint records (values, standard errors)
    rows_a, rows_b = read_metrics(a_dir / "metrics.csv"), read_metrics(b_dir / "metrics.csv")
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows_a] == \
           [{k: v for k, v in r.items() if k not in drop} for r in rows_b]


@pytest.mark.parametrize("rule", ["best", "one_se"])
def test_two_plus_two_epochs_equal_four(tmp_path, rule):
    rule = f"trainer.checkpoint_rule={rule}"
    train(config(tmp_path, "straight", rule))
    first = train(config(tmp_path, "resumed", "trainer.max_epochs=2", rule))
    assert first.epoch == 2
    second = train(config(tmp_path, "resumed", rule), resume=True)
    assert second.epoch == 4 and second.step == 4 * 4
    assert_same_run(tmp_path / "straight", tmp_path / "resumed")


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_from_the_middle_of_an_epoch(tmp_path, workers):
    # with loader workers, the resumed epoch's first batch goes to worker 0 again: the items'
    # random draws must not depend on which worker reads them
    loader = f"trainer.num_workers={workers}"
    train(config(tmp_path, "straight", "trainer.max_epochs=2", loader))
    stopped = train(config(tmp_path, "resumed", "trainer.max_epochs=2", "trainer.max_steps=5",
                           loader))
    assert stopped.status == "max_steps" and stopped.step == 5
    train(config(tmp_path, "resumed", "trainer.max_epochs=2", loader), resume=True)
    assert_same_run(tmp_path / "straight", tmp_path / "resumed")


def test_a_checkpoint_with_the_earlier_flat_partial_sums_resumes_exactly(tmp_path):
    # checkpoints written before TrainState kept the unfinished epoch's sums flat, with the
    # item count under an in-band "_count" key; a run stopped mid-epoch then must still resume
    train(config(tmp_path, "straight", "trainer.max_epochs=2"))
    train(config(tmp_path, "resumed", "trainer.max_epochs=2", "trainer.max_steps=5"))
    last = tmp_path / "resumed/checkpoints/last.pt"
    state = load_checkpoint(last)
    totals = state["train_partial"]
    assert set(totals) == {"sums", "count", "squares"} and totals["count"] == 3  # one batch
    state["train_partial"] = {**totals["sums"], "_count": totals["count"]}
    save_checkpoint(state, last)
    train(config(tmp_path, "resumed", "trainer.max_epochs=2"), resume=True)
    assert_same_run(tmp_path / "straight", tmp_path / "resumed")


def test_train_state_round_trips_and_reads_earlier_checkpoints():
    state = TrainState(epoch=3, batch_in_epoch=2, step=14,
                       train_totals=MetricTotals({"loss": -4.5, "acc": 2.0}, 6.0), validated=False)
    assert TrainState.from_dict(state.to_dict()) == state
    assert state.train_totals.means("train_") == {"train_loss": -0.75, "train_acc": 2.0 / 6}
    flat = {"epoch": 3, "batch_in_epoch": 2, "step": 14, "validated": False,
            "train_partial": {"loss": -4.5, "acc": 2.0, "_count": 6.0}}
    assert TrainState.from_dict(flat) == state
    # the oldest checkpoints: saved at epoch ends only, with neither key
    assert TrainState.from_dict({"epoch": 2, "step": 8}) == TrainState(epoch=2, step=8)
    state.next_epoch()
    assert (state.epoch, state.batch_in_epoch, state.train_totals) == (4, 0, MetricTotals())


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    np.random.standard_normal()  # leaves a cached gaussian in NumPy's state
    random.gauss(0, 1)
    save_checkpoint({"rng": capture_rng()}, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), np.random.standard_normal(), random.random(),
                random.gauss(0, 1))
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    state = torch.load(tmp_path / "rng.pt", weights_only=True)
    restore_rng(state["rng"])
    again = (torch.rand(3), np.random.rand(3), np.random.standard_normal(), random.random(),
             random.gauss(0, 1))
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1])
    assert expected[2:] == again[2:]
