"""Global layer normalisation (over every non-batch axis) for exported graphs.

onnxruntime sums a reduction in one float32 pass, so the statistics of a global norm over the
C x L values of a long input drift with its length: on SuDoRM-RF-lite's 256 x 20000 encoder
frames of 40 s the exported graph was 1e-3 of the output's peak from PyTorch (which sums
pairwise, 3e-7 from float64). Reducing one axis at a time keeps every sum short: 3e-6.
One ReduceMean over both axes drifts as InstanceNormalization does, and so do onnxruntime's
LayerNormalization and the one-pass E[x^2] - E[x]^2; float64 statistics are exact, but their
casts make the norm 2.7x slower than InstanceNormalization (table: benchmarks/README.md). The
affine map is folded into the per-channel scale: four element-wise passes over the tensor and
two reductions. Models call :func:`global_normalize` only while exporting; in PyTorch their fused
kernels (``F.layer_norm``, ``nn.GroupNorm``) are 2.5-5x faster than these separate reductions.
"""

from __future__ import annotations

import torch


def mean_over_non_batch_axes(x: torch.Tensor) -> torch.Tensor:
    """``x.mean(all axes but the first, keepdim=True)``, one axis at a time (last first)."""
    for dim in range(x.dim() - 1, 0, -1):
        x = x.mean(dim, keepdim=True)
    return x


def global_normalize(x: torch.Tensor, eps: float, weight: torch.Tensor,
                     bias: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps) * weight + bias`` with mean and variance over every
    non-batch axis, computed in two passes of per-axis means.

    ``x`` is ``[B, ...]``; ``weight`` and ``bias`` broadcast against one example ``x[0]``
    (``[C, 1]`` for ``[B, C, L]``, ``[N]`` for channels-last ``[B, L, N]``).
    """
    centred = x - mean_over_non_batch_axes(x)
    variance = mean_over_non_batch_axes(centred * centred)
    # weight * rsqrt is per channel: one multiplication of the whole tensor instead of two
    return centred * (torch.rsqrt(variance + eps) * weight) + bias
