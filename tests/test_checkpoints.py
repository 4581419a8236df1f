"""Best checkpoints: the trainer's ranking and the loader's choice are one definition."""

from __future__ import annotations

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
