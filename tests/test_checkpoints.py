"""Best checkpoints: the trainer's ranking and the loader's choice are one definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audionets.errors import CheckpointError
from audionets.serialization.checkpoints import BestCheckpoints, find_best_checkpoint


def write_best(folder, mode: str, monitor: str, values: list[float]) -> BestCheckpoints:
    """Add ``values`` epoch by epoch as the trainer does, recording the monitor in each file."""
    best = BestCheckpoints(folder, keep=3, mode=mode)
    for epoch, value in enumerate(values, start=1):
        state = {"model": {"w": torch.full((2,), float(epoch))},
                 "monitor": {"name": monitor, "mode": mode}}
        best.add(state, value, epoch, monitor)
    return best


@pytest.mark.parametrize("mode, monitor, values, expected_epoch", [
    # a "min" monitor on a metric whose name reads as higher-is-better
    ("min", "valid_si_snri", [3.5, -1.25, 2.0], 2),
    # a "max" monitor on a metric whose name ends in loss
    ("max", "valid_loss", [0.5, 0.9, 0.1], 2),
    # the defaults agree too
    ("max", "valid_si_snri", [3.5, -1.25, 2.0], 1),
    ("min", "valid_loss", [0.5, 0.9, 0.1], 3),
])
def test_find_best_checkpoint_honours_the_monitor_mode(tmp_path, mode, monitor, values,
                                                       expected_epoch):
    best = write_best(tmp_path, mode, monitor, values)
    found = find_best_checkpoint(tmp_path)
    assert found == best.best_path()
    assert found.name.startswith(f"best-epoch{expected_epoch:03d}-")
    assert torch.load(found, weights_only=True)["model"]["w"][0].item() == expected_epoch


def test_exact_values_break_ties_of_rounded_names(tmp_path):
    # both names read valid_loss=0.1000; the recorded values tell them apart
    best = write_best(tmp_path, "min", "valid_loss", [0.09996, 0.10004])
    assert find_best_checkpoint(tmp_path) == best.best_path() == (
        tmp_path / "best-epoch001-valid_loss=0.1000.pt")


def test_unrecorded_files_fall_back_to_their_names(tmp_path):
    torch.save({"model": {}}, tmp_path / "best-epoch001-valid_loss=0.2000.pt")
    torch.save({"model": {}}, tmp_path / "best-epoch002-valid_loss=0.3000.pt")
    assert find_best_checkpoint(tmp_path) == tmp_path / "best-epoch001-valid_loss=0.2000.pt"
    assert find_best_checkpoint(tmp_path / "missing") is None


def test_mixed_runs_are_refused(tmp_path):
    write_best(tmp_path, "max", "valid_loss", [0.5])
    torch.save({"model": {}}, tmp_path / "best-epoch007-valid_loss=0.2000.pt")  # name says min
    with pytest.raises(CheckpointError, match="disagree on the monitor mode"):
        find_best_checkpoint(tmp_path)


def add_run(folder, mode: str, rule: str, keep: int, values, ses) -> BestCheckpoints:
    best = BestCheckpoints(folder, keep=keep, mode=mode, rule=rule)
    for epoch, (value, se) in enumerate(zip(values, ses), start=1):
        state = {"model": {"w": torch.full((2,), float(epoch))},
                 "monitor": {"name": "valid_accuracy", "mode": mode, "rule": rule}}
        best.add(state, value, epoch, "valid_accuracy", se, step=10 * epoch)
    return best


def test_one_se_chooses_the_latest_checkpoint_within_one_standard_error_of_the_best(tmp_path):
    values = [0.90, 0.95, 0.93, 0.91, 0.925, 0.80]
    best = add_run(tmp_path, "max", "one_se", 1, values, [0.03] * 6)
    # the best is 0.95 (epoch 2), its bound 0.92: epoch 5 is the latest within it; epoch 4's
    # 0.91 is not, though it is within one standard error of epoch 3's 0.93
    assert best.best_path().name == "best-epoch005-valid_accuracy=0.9250.pt"
    assert find_best_checkpoint(tmp_path) == best.best_path()
    assert torch.load(best.best_path(), weights_only=True)["model"]["w"][0].item() == 5
    # keep_best 1 keeps the best value's file too: the bound it sets outlives later choices
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best-epoch002-valid_accuracy=0.9500.pt", "best-epoch005-valid_accuracy=0.9250.pt"]
    # rule best on the same values: the best value
    (tmp_path / "plain").mkdir()
    plain = add_run(tmp_path / "plain", "max", "best", 1, values, [0.03] * 6)
    assert plain.best_path().name == "best-epoch002-valid_accuracy=0.9500.pt"


@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("keep", [1, 3])
def test_one_se_choice_equals_the_rule_over_the_whole_history(tmp_path, mode, keep):
    # the files kept (keep_best plus the chosen one) always hold the rule's answer over every
    # validation of the run: checked against the rule applied to the full history directly
    rng = np.random.default_rng(keep)
    for run in range(20):
        values = rng.normal(0.0, 1.0, size=25).round(4) + np.linspace(0.0, 0.5, 25)
        ses = rng.uniform(0.05, 0.6, size=25)
        folder = tmp_path / f"{mode}-{run}"
        folder.mkdir()
        best = add_run(folder, mode, "one_se", keep, values.tolist(), ses.tolist())
        sign = 1.0 if mode == "max" else -1.0
        top = int(np.argmax(sign * values))  # first of equal values, as a stable sort keeps
        within = np.flatnonzero(sign * values >= sign * values[top] - ses[top])
        expected = int(within.max()) + 1
        for found in (best.best_path(), find_best_checkpoint(folder)):
            assert found.name.startswith(f"best-epoch{expected:03d}-")
        assert len(list(folder.iterdir())) <= keep + 1


def test_runs_of_two_rules_are_refused(tmp_path):
    add_run(tmp_path, "max", "one_se", 1, [0.9], [0.01])
    state = {"model": {}, "monitor": {"name": "valid_accuracy", "mode": "max"}}
    BestCheckpoints(tmp_path, keep=1, mode="max").add(state, 0.5, 7, "valid_accuracy")
    with pytest.raises(CheckpointError, match="disagree on the checkpoint rule"):
        find_best_checkpoint(tmp_path)
