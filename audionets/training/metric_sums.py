"""Per-item metrics summed over an epoch or a split, and added up over the processes.

:class:`MetricSums` adds the ``[B]`` metrics of each batch and their squares on the device (no
host sync per batch); :meth:`MetricSums.reduce` adds every process's sums together once, into a
plain :class:`MetricTotals` that a checkpoint stores, a metrics row averages and the choice of
the best checkpoint reads a standard error from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from audionets.training import distributed

#: the item count's key in checkpoints written before :class:`MetricTotals` (read only)
LEGACY_COUNT = "_count"


@dataclass
class MetricTotals:
    """Sums of per-item metrics (``{name: sum}``) and of their squares over ``count`` items."""

    sums: dict[str, float] = field(default_factory=dict)
    count: float = 0.0
    squares: dict[str, float] = field(default_factory=dict)

    def means(self, prefix: str) -> dict[str, float]:
        """``{prefix + name: sum / count}``; empty when no item was counted."""
        if not self.count:
            return {}
        return {prefix + name: value / self.count for name, value in self.sums.items()}

    def standard_error(self, name: str) -> float:
        """The standard error of the mean of ``name``: the sample standard deviation of its
        per-item values over sqrt(count) (sqrt(p (1 - p) / (n - 1)) for an accuracy p); 0 for
        fewer than two items or no recorded squares."""
        if self.count < 2 or name not in self.squares:
            return 0.0
        mean = self.sums[name] / self.count
        variance = (self.squares[name] - self.count * mean * mean) / (self.count - 1)
        return math.sqrt(max(variance, 0.0) / self.count)

    def to_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "count": self.count, "squares": dict(self.squares)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "MetricTotals":
        """Inverse of :meth:`to_dict`; also reads the earlier forms, without squares and the
        flat ``{name: sum, ..., "_count": count}``."""
        if not data:
            return cls()
        if "sums" in data:
            sums, count, squares = data["sums"], data["count"], data.get("squares") or {}
        else:
            sums = {k: v for k, v in data.items() if k != LEGACY_COUNT}
            count, squares = data.get(LEGACY_COUNT, 0.0), {}
        return cls({str(k): float(v) for k, v in sums.items()}, float(count),
                   {str(k): float(v) for k, v in squares.items()})


class MetricSums:
    """Running sums of per-item metrics on ``device``, started from ``start`` (the totals of
    the batches a resumed epoch already trained)."""

    def __init__(self, device: torch.device, start: MetricTotals | None = None) -> None:
        start = start or MetricTotals()

        def on_device(values: dict[str, float]) -> dict[str, torch.Tensor]:
            return {name: torch.tensor(value, dtype=torch.float64, device=device)
                    for name, value in values.items()}

        self.sums, self.squares = on_device(start.sums), on_device(start.squares)
        self.count = torch.tensor(start.count, dtype=torch.float64, device=device)

    def add(self, metrics: dict[str, torch.Tensor], weights: torch.Tensor | None = None) -> None:
        """Add the per-item ``metrics`` ``{name: [B]}``, each item times ``weights [B]`` if given
        (0 for an item that must not count)."""
        for name, values in metrics.items():
            values = values.detach().double()
            weighted = values * weights if weights is not None else values
            for running, total in ((self.sums, weighted.sum()),
                                   (self.squares, (weighted * values).sum())):
                running[name] = running[name] + total if name in running else total
        size = next(iter(metrics.values())).numel()
        self.count += weights.sum() if weights is not None else size

    def reduce(self, names: Sequence[str], over_processes: bool) -> MetricTotals:
        """The sums (and sums of squares) of the metrics ``names`` and the count, added over
        all processes when ``over_processes``. Every process reduces the same tensor, also one
        that saw no batch (a resumed epoch with none left, a short shard): its sums count as
        zeros."""
        zero = torch.zeros((), dtype=torch.float64, device=self.count.device)
        names = sorted(names)
        packed = torch.stack([self.sums.get(n, zero) for n in names]
                             + [self.squares.get(n, zero) for n in names] + [self.count])
        if over_processes:
            distributed.all_reduce_sum(packed)
        *values, count = packed.tolist()
        if not count:
            return MetricTotals()
        sums, squares = values[:len(names)], values[len(names):]
        return MetricTotals(dict(zip(names, sums)), count, dict(zip(names, squares)))
