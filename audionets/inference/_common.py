"""Pieces shared by :class:`Separator` and :class:`Classifier`."""

from __future__ import annotations

import sys

import torch

from audionets.errors import AudioError, CheckpointError


def check_batch(wav: torch.Tensor, what: str) -> torch.Tensor:
    """Check a ``[B, T]`` float batch of finite samples; returns it as float32."""
    if not isinstance(wav, torch.Tensor) or wav.dim() != 2 or wav.shape[-1] == 0:
        shape = tuple(wav.shape) if isinstance(wav, torch.Tensor) else type(wav).__name__
        raise AudioError(f"{what}: expected a [batch, time] tensor with time > 0, got {shape}")
    if not torch.isfinite(wav).all():
        raise AudioError(f"{what}: contains NaN or Inf samples")
    return wav.float()


def load_checked(source, device: str, task: str):
    """``hub.load_model(source)`` checked to be a ``task`` model: ``(model, meta)``."""
    from audionets import hub

    model, meta = hub.load_model(source, device=device)
    if meta.task != task:
        use = {"separation": "Separator", "classification": "Classifier"}.get(meta.task)
        hint = f"; load it with audionets.{use}" if use else ""
        raise CheckpointError(f"{source}: is a {meta.task} model, not a {task} model{hint}")
    return model, meta


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, name: str, enabled: bool, unit: str = "chunk"):
    """A tqdm bar on stderr with ``update``/``close``, or one that does nothing."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit=unit, file=sys.stderr, leave=False)
