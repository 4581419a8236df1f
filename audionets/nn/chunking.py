"""Split a sequence into 50%-overlapping chunks and overlap-add it back (dual-path models).

The layout is channels-last: a sequence ``[B, L, N]`` becomes chunks ``[B, S, K, N]`` (S chunks
of K frames). The padding follows SpeechBrain's ``Dual_Path_Model`` exactly (K // 2 zeros on
both sides plus a tail ``gap`` so that the chunks tile the sequence), because the dual-path
norms see the padded frames and checkpoint compatibility depends on the same statistics.

Every frame of the original sequence lies in exactly two chunks, so
``overlap_add(segment(x)) == 2 * x`` (SpeechBrain does not rescale either).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from audionets.nn.shapes import fit, take


def chunk_padding(length: int, chunk_size: int) -> tuple[int, int]:
    """Return ``(hop, gap)``: the hop (K // 2) and the zeros appended after ``length`` frames.

    ``gap`` lies in ``1..K`` and makes ``length + gap + hop`` a multiple of ``chunk_size``:
    ``(length + hop) // K + 1`` multiples, written without ``%`` so that an exported graph
    keeps the sizes' relations (see :mod:`audionets.nn.shapes`).
    """
    if chunk_size < 2:
        raise ValueError(f"chunk_size must be at least 2, got {chunk_size}")
    hop = chunk_size // 2
    gap = ((length + hop) // chunk_size + 1) * chunk_size - length - hop
    return hop, gap


def segment(x: torch.Tensor, chunk_size: int) -> tuple[torch.Tensor, int]:
    """Cut ``x`` [B, L, N] into chunks ``[B, S, K, N]``; return them and the tail ``gap``.

    Chunks start at frames 0, K//2, K, K + K//2, ... of the padded sequence (for odd K the
    two interleaved grids are offset by K//2, as in SpeechBrain).
    """
    batch, length, channels = x.shape
    hop, gap = chunk_padding(length, chunk_size)
    grid = length + gap + hop  # frames of each grid of back-to-back chunks
    pairs = grid // chunk_size
    padded = fit(F.pad(x, (0, 0, hop, 0)), grid + hop, max_pad=chunk_size + hop, dim=1)
    # two grids of back-to-back chunks: one from frame 0, one from frame `hop`
    first = take(padded, grid, dim=1).reshape(batch, pairs, chunk_size, channels)
    second = padded[:, hop:].reshape(batch, pairs, chunk_size, channels)
    chunks = torch.stack((first, second), dim=2).reshape(batch, 2 * pairs, chunk_size, channels)
    return chunks, gap


def overlap_add(chunks: torch.Tensor, gap: int) -> torch.Tensor:
    """Sum 50%-overlapping chunks ``[B, S, K, N]`` back into a sequence ``[B, L, N]``.

    ``gap`` is the value :func:`segment` returned; the padding it added is removed.
    """
    batch, num_chunks, chunk_size, channels = chunks.shape
    hop = chunk_size // 2
    pairs = chunks.reshape(batch, num_chunks // 2, 2, chunk_size, channels)
    first = pairs[:, :, 0].reshape(batch, -1, channels)
    second = pairs[:, :, 1].reshape(batch, -1, channels)
    grid = first.shape[1]
    total = first[:, hop:] + take(second, grid - hop, dim=1)
    return take(total, grid - hop - gap, dim=1)
