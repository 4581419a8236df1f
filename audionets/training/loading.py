"""The batches of a training run: which items, in which order, each with its own seeded draws.

:class:`SplitLoaders` makes the DataLoader of a split for an epoch: a fixed (seed, epoch) order
shared out over the processes as :class:`~torch.utils.data.DistributedSampler` does, cut by
``limit_*_batches``, minus the batches a resumed epoch already trained. Each item's random
draws (crops, dynamic mixing, augmentation) are seeded from its position in the epoch
(:class:`SeededItems`), so an item does not depend on which worker reads it nor on where the
run was resumed. Worker processes leave Ctrl-C / SIGTERM to the main process, which saves a
checkpoint (:func:`init_worker`, :func:`iterate`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import signal
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from audionets.training.config import SPLITS, Config
from audionets.training.distributed import DistInfo

#: the signals that ask a run to stop with a checkpoint
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def rng_kept() -> Iterator[None]:
    """Put the global torch (CPU), NumPy and ``random`` states back after the block."""
    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


class SeededItems(Dataset):
    """``dataset`` read at ``(position, index)`` keys; the torch, NumPy and ``random`` draws of
    each item are seeded from ``(*base, position)`` alone. Which DataLoader worker reads an
    item, and how many batches a resumed epoch skipped, then no longer change it. In the main
    process (``num_workers=0``) the model's RNG stream is put back after each item."""

    def __init__(self, dataset: Dataset, base: tuple[int, ...]) -> None:
        self.dataset, self.base = dataset, base

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        position, index = key
        words = [value % 2**32 for value in (*self.base, position)]
        seed = int(np.random.SeedSequence(words).generate_state(1)[0])
        in_worker = torch.utils.data.get_worker_info() is not None  # nothing else draws there
        with contextlib.nullcontext() if in_worker else rng_kept():
            torch.default_generator.manual_seed(seed)  # CPU only: CUDA's stream is the model's
            np.random.seed(seed)
            random.seed(seed)
            return self.dataset[index]


def init_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: leave Ctrl-C / SIGTERM to the main process, which saves a
    checkpoint and stops the workers (``pkill`` and terminals signal the whole group). (Items
    seed their own random draws: :class:`SeededItems`.)

    The worker starts with both signals blocked (see :func:`iterate`); one that arrived since is
    discarded when it is ignored here, before they are unblocked."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def iterate(loader: DataLoader) -> Iterator:
    """``iter(loader)`` with Ctrl-C / SIGTERM held back while its worker processes start.

    A worker inherits the blocked mask, so a signal sent to the whole process group cannot kill it
    before :func:`init_worker` ignores it; the main process gets the signal as soon as the
    workers have started, and saves a checkpoint.
    """
    if not loader.num_workers or not hasattr(signal, "pthread_sigmask"):
        return iter(loader)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        return iter(loader)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The tensors of ``batch`` moved to ``device`` (other values as they are)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}


@dataclasses.dataclass(frozen=True)
class SplitLoaders:
    """The loaders of ``datasets`` (``{split: dataset}``) for this process (``dist``)."""

    datasets: dict[str, Dataset]
    config: Config
    dist: DistInfo
    device: torch.device

    def alone(self) -> "SplitLoaders":
        """The same loaders for a process that reads every item itself (rank 0's test)."""
        return dataclasses.replace(self, dist=DistInfo())

    def batch_size(self, split: str) -> int:
        trainer = self.config.trainer
        if split != "train" and self.config.data_kwargs(split).get("segment_seconds", 0) is None:
            return 1  # full-length items of different lengths cannot be stacked
        if split == "train":
            return trainer.batch_size
        return trainer.valid_batch_size or trainer.batch_size

    def _limit(self, split: str) -> int | None:
        trainer = self.config.trainer
        return trainer.limit_train_batches if split == "train" else trainer.limit_valid_batches

    def indices(self, split: str, epoch: int) -> list[int]:
        """This process's dataset indices of ``split`` in epoch ``epoch``, in order."""
        sampler = DistributedSampler(
            self.datasets[split], num_replicas=self.dist.world_size, rank=self.dist.rank,
            shuffle=split == "train", seed=self.config.seed, drop_last=False,
        )
        sampler.set_epoch(epoch)
        indices = list(sampler)
        limit = self._limit(split)
        if limit is not None:
            indices = indices[: limit * self.batch_size(split)]
        return indices

    def num_batches(self, split: str) -> int:
        """Batches of ``split`` per epoch (the same in every epoch)."""
        return math.ceil(len(self.indices(split, 0)) / self.batch_size(split))

    def loader(self, split: str, epoch: int, skip_batches: int = 0) -> DataLoader:
        """Batches of ``split`` in a fixed (seed, epoch) order, minus the first ``skip_batches``."""
        batch_size = self.batch_size(split)
        first = skip_batches * batch_size
        indices = self.indices(split, epoch)[first:]
        dataset = self.datasets[split]
        if split == "train" and hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)  # datasets that draw fresh examples per epoch
        keys = list(enumerate(indices, start=first))
        # the workers' base seed comes from here: creating them draws nothing from the global
        # RNG (the model's stream), so a resumed run's dropout masks stay those of the original
        generator = torch.Generator()
        generator.manual_seed(self.config.seed * 1_000_003 + epoch * 1009 + self.dist.rank)
        workers = self.config.trainer.num_workers
        base = (self.config.seed, SPLITS.index(split), epoch, self.dist.rank)
        return DataLoader(
            SeededItems(dataset, base), batch_size=batch_size, sampler=keys,
            num_workers=workers, worker_init_fn=init_worker if workers else None,
            generator=generator, pin_memory=self.device.type == "cuda", drop_last=False,
        )

    def real_items(self, split: str, start: int, size: int) -> torch.Tensor:
        """``[size]`` weights of this process's items ``start...``: 1 for dataset items, 0 for
        the repeats :class:`DistributedSampler` pads the last round with, so that every item
        of an evaluated split counts exactly once over all processes."""
        positions = torch.arange(start, start + size, dtype=torch.float64, device=self.device)
        real = self.dist.rank + positions * self.dist.world_size < len(self.datasets[split])
        return real.double()
