"""Per-item metrics summed over an epoch or a split, and added up over the processes.

:class:`MetricSums` adds the ``[B]`` metrics of each batch on the device (no host sync per
batch); :meth:`MetricSums.reduce` adds every process's sums together once, into a plain
:class:`MetricTotals` that a checkpoint stores and a metrics row averages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from audionets.training import distributed

#: the item count's key in checkpoints written before :class:`MetricTotals` (read only)
LEGACY_COUNT = "_count"


@dataclass
class MetricTotals:
    """Sums of per-item metrics (``{name: sum}``) over ``count`` items."""

    sums: dict[str, float] = field(default_factory=dict)
    count: float = 0.0

    def means(self, prefix: str) -> dict[str, float]:
        """``{prefix + name: sum / count}``; empty when no item was counted."""
        if not self.count:
            return {}
        return {prefix + name: value / self.count for name, value in self.sums.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "count": self.count}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "MetricTotals":
        """Inverse of :meth:`to_dict`; also reads the earlier flat form ``{name: sum, ...,
        "_count": count}``."""
        if not data:
            return cls()
        if "sums" in data:
            sums, count = data["sums"], data["count"]
        else:
            sums = {k: v for k, v in data.items() if k != LEGACY_COUNT}
            count = data.get(LEGACY_COUNT, 0.0)
        return cls({str(k): float(v) for k, v in sums.items()}, float(count))


class MetricSums:
    """Running sums of per-item metrics on ``device``, started from ``start`` (the totals of
    the batches a resumed epoch already trained)."""

    def __init__(self, device: torch.device, start: MetricTotals | None = None) -> None:
        start = start or MetricTotals()
        self.sums = {name: torch.tensor(value, dtype=torch.float64, device=device)
                     for name, value in start.sums.items()}
        self.count = torch.tensor(start.count, dtype=torch.float64, device=device)

    def add(self, metrics: dict[str, torch.Tensor], weights: torch.Tensor | None = None) -> None:
        """Add the per-item ``metrics`` ``{name: [B]}``, each item times ``weights [B]`` if given
        (0 for an item that must not count)."""
        for name, values in metrics.items():
            values = values.detach().double()
            total = (values * weights).sum() if weights is not None else values.sum()
            self.sums[name] = self.sums[name] + total if name in self.sums else total
        size = next(iter(metrics.values())).numel()
        self.count += weights.sum() if weights is not None else size

    def reduce(self, names: Sequence[str], over_processes: bool) -> MetricTotals:
        """The sums of the metrics ``names`` and the count, added over all processes when
        ``over_processes``. Every process reduces the same tensor, also one that saw no batch
        (a resumed epoch with none left, a short shard): its sums count as zeros."""
        zero = torch.zeros((), dtype=torch.float64, device=self.count.device)
        names = sorted(names)
        packed = torch.stack([self.sums.get(n, zero) for n in names] + [self.count])
        if over_processes:
            distributed.all_reduce_sum(packed)
        *sums, count = packed.tolist()
        if not count:
            return MetricTotals()
        return MetricTotals(dict(zip(names, sums)), count)
