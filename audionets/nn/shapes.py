"""Length arithmetic that an exported graph recomputes for every input length.

In eager PyTorch these helpers are the obvious Python operations. While ``torch.export``
traces a model (the ONNX exporter uses it), a Python ``max`` or a slice whose bound depends on
the input length would be decided once, for the example input, and a graph exported at one
length would then return the wrong number of samples at another (the SepFormer returned 33488
samples for a 33491-sample input). While exporting, the helpers emit graph operations
instead: a clamp on a scalar tensor for ``max`` and a gather for a slice, which hold for any
length, including lengths that make a size equal to 1.

Size arithmetic in an exported graph must not divide (``//``, ``%``) a negative number: Python
floors, ONNX's integer division truncates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def exporting() -> bool:
    """Whether ``torch.export`` (or the ONNX exporter) is tracing the current call."""
    if not torch.jit.is_scripting():  # TorchScript compiles none of this branch
        return torch.compiler.is_exporting()
    return False


def at_least(length: int, minimum: int) -> int:
    """``max(length, minimum)``; while exporting, a size computed in the graph."""
    if not torch.jit.is_scripting():
        if torch.compiler.is_exporting():
            value = torch.scalar_tensor(length, dtype=torch.int64).clamp(min=minimum).item()
            torch._check(value >= minimum)
            return value
    return max(length, minimum)


def take(x: torch.Tensor, length: int, dim: int = -1) -> torch.Tensor:
    """The first ``length`` entries of ``x`` along ``dim`` (``length <= x.shape[dim]``)."""
    if not torch.jit.is_scripting():
        if torch.compiler.is_exporting():
            return x.index_select(dim, torch.arange(length, device=x.device))
    return x.narrow(dim, 0, length)


def fit(x: torch.Tensor, length: int, max_pad: int, dim: int = -1) -> torch.Tensor:
    """``x`` zero-padded at the end or trimmed to ``length`` entries along ``dim``.

    ``max_pad`` (a constant or the input length) bounds ``length - x.shape[dim]``: while
    exporting, ``x`` is padded by that much and the first ``length`` entries are kept.
    """
    dim = dim % x.dim()
    before = [0, 0] * (x.dim() - 1 - dim)  # F.pad lists the pads from the last dimension back
    if exporting():
        return take(F.pad(x, before + [0, max_pad]), length, dim)
    return F.pad(x, before + [0, length - x.shape[dim]])
