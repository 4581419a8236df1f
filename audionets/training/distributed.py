"""Data-parallel training under ``torchrun``: process group set-up, reductions, rank checks.

``torchrun --nproc_per_node=N -m audionets train CONFIG`` starts N processes with ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; :func:`init_from_env`
joins the process group (``nccl`` on GPUs, ``gloo`` on CPUs). A plain single process has
world size 1 and needs no process group.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files and shows progress."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_info() -> DistInfo:
    """Rank, local rank and world size from the environment torchrun sets (1 process if unset)."""
    return DistInfo(
        rank=int(os.environ.get("RANK", 0)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
    )


def init_from_env(device: torch.device) -> DistInfo:
    """Join the process group when ``WORLD_SIZE > 1`` (backend from ``device``); return the info."""
    info = env_info()
    if info.enabled and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info


def shutdown() -> None:
    """Leave the process group and free it now, while the interpreter is fully alive.

    Objects that hold the group (a DDP wrapper, frames torch keeps from a lazy import) can sit
    in reference cycles; left to the collector at interpreter exit, a gloo group's
    destruction aborts the process. Callers drop their own references first.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes in place (a no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_process(flag: bool, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on at least one (e.g. a stop request)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)
