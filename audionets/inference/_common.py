"""Pieces shared by :class:`Separator` and :class:`Classifier`."""

from __future__ import annotations

import sys
from typing import Callable

import torch

from audionets.errors import AudioError, CheckpointError


def check_batch(wav: torch.Tensor, what: str) -> torch.Tensor:
    """Check a non-empty ``[B, T]`` float batch of finite samples; returns it as float32."""
    if (not isinstance(wav, torch.Tensor) or wav.dim() != 2 or wav.shape[-1] == 0
            or wav.shape[0] == 0):
        shape = tuple(wav.shape) if isinstance(wav, torch.Tensor) else type(wav).__name__
        raise AudioError(f"{what}: expected a [batch, time] tensor with batch > 0 and time > 0, "
                         f"got {shape}")
    if not torch.isfinite(wav).all():
        raise AudioError(f"{what}: contains NaN or Inf samples")
    return wav.float()


def check_outputs(values: torch.Tensor, source: str | None) -> torch.Tensor:
    """``values`` if all finite; else CheckpointError: NaN / Inf outputs are never returned
    or written (a model given as a module may hold damaged weights or overflow)."""
    if not torch.isfinite(values).all():
        raise CheckpointError(f"{source or 'the model'}: the model produced NaN or Inf outputs; "
                              "its weights are damaged or it diverged in training")
    return values


def load_checked(source, device: str, task: str):
    """``hub.load_model(source)`` checked to be a ``task`` model: ``(model, meta)``.

    An exported folder (ONNX / TorchScript, see :mod:`audionets.export`) loads as its runtime
    model from :mod:`audionets.inference.backends` instead of a PyTorch module.
    """
    from audionets import hub

    path = hub.resolve_source(source)
    if hub.is_exported(path):
        from audionets.inference.backends import load_exported

        model, meta = load_exported(path, device=device)
    else:
        model, meta = hub.load_model(path, device=device)
    if meta.task != task:
        use = {"separation": "Separator", "classification": "Classifier"}.get(meta.task)
        hint = f"; load it with audionets.{use}" if use else ""
        raise CheckpointError(f"{source}: is a {meta.task} model, not a {task} model{hint}")
    return model, meta


def is_exported_model(model) -> bool:
    """Whether ``model`` is a runtime model of an exported folder (onnxruntime, TorchScript):
    it runs as exported (no pre-packing, no quantization)."""
    return not isinstance(model, torch.nn.Module) or isinstance(model, torch.jit.ScriptModule)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class _CallbackBar:
    """Calls ``report(done, total)`` after each update (a web page's progress, for example)."""

    def __init__(self, report: Callable[[int, int], None], total: int) -> None:
        self.report, self.total, self.done = report, total, 0

    def update(self, n: int) -> None:
        self.done += n
        self.report(self.done, self.total)

    def close(self) -> None:
        pass


def progress_bar(total: int, name: str, enabled: bool | Callable[[int, int], None],
                 unit: str = "chunk"):
    """Progress with ``update``/``close``: a tqdm bar on stderr when ``enabled`` is True, calls
    of ``enabled(done, total)`` when it is a callable, nothing when it is False."""
    if callable(enabled):
        return _CallbackBar(enabled, total)
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit=unit, file=sys.stderr, leave=False)
