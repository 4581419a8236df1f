"""Metric sums: means and standard errors agree with NumPy; weights drop padded items."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audionets.training.metric_sums import MetricSums, MetricTotals


def test_means_and_standard_errors_match_numpy():
    rng = np.random.default_rng(0)
    loss = rng.normal(2.0, 0.7, size=37)
    correct = (rng.random(37) < 0.8).astype(float)
    sums = MetricSums(torch.device("cpu"))
    for start in range(0, 37, 8):  # batches of 8, the last of 5
        sums.add({"loss": torch.from_numpy(loss[start:start + 8]).float(),
                  "accuracy": torch.from_numpy(correct[start:start + 8]).float()})
    totals = sums.reduce(["loss", "accuracy"], over_processes=False)
    assert totals.means("valid_") == pytest.approx(
        {"valid_loss": loss.mean(), "valid_accuracy": correct.mean()}, rel=1e-6)
    assert totals.standard_error("loss") == pytest.approx(loss.std(ddof=1) / np.sqrt(37),
                                                          rel=1e-6)
    p = correct.mean()  # an accuracy's: sqrt(p (1 - p) / (n - 1))
    assert totals.standard_error("accuracy") == pytest.approx(np.sqrt(p * (1 - p) / 36))


def test_zero_weights_leave_items_out_of_sums_and_squares():
    values = torch.tensor([1.0, 3.0, 100.0, -50.0])
    sums = MetricSums(torch.device("cpu"))
    sums.add({"m": values}, weights=torch.tensor([1.0, 1.0, 0.0, 0.0]))
    totals = sums.reduce(["m"], over_processes=False)
    assert (totals.count, totals.sums, totals.squares) == (2.0, {"m": 4.0}, {"m": 10.0})
    assert totals.standard_error("m") == pytest.approx(np.std([1.0, 3.0], ddof=1) / np.sqrt(2))


def test_totals_round_trip_and_read_earlier_forms():
    totals = MetricTotals({"loss": 6.0}, 3.0, {"loss": 14.0})
    assert MetricTotals.from_dict(totals.to_dict()) == totals
    # a resumed epoch starts from stored totals and goes on adding
    sums = MetricSums(torch.device("cpu"), totals)
    sums.add({"loss": torch.tensor([4.0])})
    assert sums.reduce(["loss"], over_processes=False) == MetricTotals({"loss": 10.0}, 4.0,
                                                                       {"loss": 30.0})
    # checkpoints of earlier versions: no squares, or the flat form; no standard error then
    for old in ({"sums": {"loss": 6.0}, "count": 3.0}, {"loss": 6.0, "_count": 3.0}):
        read = MetricTotals.from_dict(old)
        assert (read.means(""), read.squares) == ({"loss": 2.0}, {})
        assert read.standard_error("loss") == 0.0
    assert MetricTotals({"loss": 1.0}, 1.0, {"loss": 1.0}).standard_error("loss") == 0.0
