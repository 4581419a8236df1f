"""Pieces shared by :class:`Separator` and :class:`Classifier`."""

from __future__ import annotations

import torch

from audionets.errors import AudioError, CheckpointError
from audionets.tasks import TASKS


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
        runner = TASKS.get(meta.task).runner
        hint = f"; load it with audionets.{runner}" if runner else ""
        raise CheckpointError(f"{source}: is a {meta.task} model, not a {task} model{hint}")
    return model, meta


def is_exported_model(model) -> bool:
    """Whether ``model`` is a runtime model of an exported folder (onnxruntime, TorchScript):
    it runs as exported (no pre-packing, no quantization)."""
    return not isinstance(model, torch.nn.Module) or isinstance(model, torch.jit.ScriptModule)
