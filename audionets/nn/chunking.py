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


def chunk_padding(length: int, chunk_size: int) -> tuple[int, int]:
    """Return ``(hop, gap)``: the hop (K // 2) and the zeros appended after ``length`` frames.

    ``gap`` lies in ``1..K`` and makes ``length + gap + hop`` a multiple of ``chunk_size``.
    """
    if chunk_size < 2:
        raise ValueError(f"chunk_size must be at least 2, got {chunk_size}")
    hop = chunk_size // 2
    gap = chunk_size - (hop + length % chunk_size) % chunk_size
    return hop, gap


def segment(x: torch.Tensor, chunk_size: int) -> tuple[torch.Tensor, int]:
    """Cut ``x`` [B, L, N] into chunks ``[B, S, K, N]``; return them and the tail ``gap``.

    Chunks start at frames 0, K//2, K, K + K//2, ... of the padded sequence (for odd K the
    two interleaved grids are offset by K//2, as in SpeechBrain).
    """
    batch, length, channels = x.shape
    hop, gap = chunk_padding(length, chunk_size)
    padded = F.pad(x, (0, 0, hop, gap + hop))
    # two grids of back-to-back chunks: one from frame 0, one from frame `hop`
    first = padded[:, : padded.shape[1] - hop].reshape(batch, -1, chunk_size, channels)
    second = padded[:, hop:].reshape(batch, -1, chunk_size, channels)
    chunks = torch.stack((first, second), dim=2).reshape(batch, -1, chunk_size, channels)
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
    total = first[:, hop:] + second[:, : second.shape[1] - hop]
    return total[:, : total.shape[1] - gap]
