"""Sinusoidal positional encoding (Vaswani et al., 2017), computed for any length on the fly."""

from __future__ import annotations

import math

import torch


def sinusoidal_encoding(
    length: int, dim: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Return the ``[length, dim]`` table ``pe[t, 2i] = sin(t w_i)``, ``pe[t, 2i+1] = cos(t w_i)``.

    ``w_i = 10000 ** (-2i / dim)``. The values equal SpeechBrain's ``PositionalEncoding`` table
    (computed in float32) wherever that table is defined; there is no maximum length.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal positional encoding needs an even dimension, got {dim}")
    positions = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freqs = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * -(math.log(10000.0) / dim)
    )
    angles = positions * freqs
    table = torch.stack((torch.sin(angles), torch.cos(angles)), dim=-1).reshape(length, dim)
    return table.to(dtype)
