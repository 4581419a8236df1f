"""Chunked separation of long signals with bounded memory.

A separation model sees the signal in overlapping chunks. Chunk ``k`` covers samples
``[k * hop, k * hop + chunk)`` with ``hop = chunk - overlap``; the last chunk stops at the end
of the signal (so it is longer than ``overlap`` but may be shorter than ``chunk``).

Stitching (:func:`stitch`), for each chunk after the first:

1. *Re-ordering*: a separator outputs its sources in arbitrary order (and, if trained with a
   scale-invariant loss without a mask, possibly with either sign), which may differ from
   chunk to chunk. On the overlap both chunks estimate the same samples, so the sources of the
   new chunk are permuted to maximise the summed absolute normalised correlation with the
   previous chunk's sources there, and clearly inverted ones are flipped
   (:func:`match_sources`); a speaker then stays on the same output with the same polarity.
2. *Overlap-add*: on the overlap the previous chunk fades out with ``cos^2`` and the new one
   fades in with ``sin^2``; the two weights sum to one, so no normalisation is needed and every
   sample before the next overlap is final as soon as its chunk is done. Only one overlap of
   state is kept, so memory does not grow with the signal length.

A signal no longer than one chunk is a single chunk: the result is exactly one forward pass.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import Tensor


def plan_chunks(total: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, end)`` sample spans of the chunks covering ``total`` samples.

    Needs ``0 <= overlap <= chunk // 2`` so that a chunk's fade-in and fade-out do not meet.
    """
    if chunk <= 0:
        raise ValueError(f"chunk must be positive; got {chunk}")
    if not 0 <= overlap <= chunk // 2:
        raise ValueError(f"overlap must be in [0, chunk // 2 = {chunk // 2}]; got {overlap}")
    if total <= chunk:
        return [(0, total)]
    hop = chunk - overlap
    count = math.ceil((total - chunk) / hop) + 1
    spans = [(k * hop, k * hop + chunk) for k in range(count - 1)]
    spans.append(((count - 1) * hop, total))
    return spans


def fade_in(length: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``sin^2`` ramp ``[length]`` from ~0 to ~1; ``1 - fade_in`` is the matching fade-out."""
    position = (torch.arange(length, dtype=torch.float64) + 0.5) / max(length, 1)
    return torch.sin(0.5 * math.pi * position).pow(2).to(dtype)


#: a matched source whose correlation with the previous chunk is at most this is inverted
FLIP_BELOW = -0.5


def match_sources(previous: Tensor, current: Tensor) -> tuple[Tensor, Tensor]:
    """Order (and polarity) of ``current``'s sources that best continue ``previous``.

    Args:
        previous: ``[B, S, N]`` sources of the previous chunk on the overlap.
        current: ``[B, S, N]`` sources of the new chunk on the same samples.

    Returns:
        ``(perm, sign)``, both ``[B, S]``: ``sign[b, :, None] * current[b, perm[b]]`` lines up
        with ``previous[b]``. A source is flipped (``sign`` -1) only when clearly inverted, its
        normalised correlation (cosine similarity of the zero-mean signals) at most
        :data:`FLIP_BELOW`: SI-SNR-trained models without a mask may return either sign, while
        masking models, whose sign is fixed, are never flipped by noise on a quiet overlap.
        ``perm`` maximises the summed correlations after those flips. Silent sources correlate
        0 with everything, so the identity is kept when nothing can be told apart.
    """
    from scipy.optimize import linear_sum_assignment

    prev = previous.double() - previous.double().mean(-1, keepdim=True)
    cur = current.double() - current.double().mean(-1, keepdim=True)
    prev = prev / prev.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cur = cur / cur.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    scores = torch.einsum("bin,bjn->bij", prev, cur).cpu().numpy()
    perms, signs = [], []
    for score in scores:
        # a pair is worth its correlation after the flip it would get
        worth = np.where(score <= FLIP_BELOW, -score, score)
        rows, cols = linear_sum_assignment(worth, maximize=True)
        perm = torch.empty(len(rows), dtype=torch.int64)
        perm[torch.as_tensor(rows)] = torch.as_tensor(cols, dtype=torch.int64)
        if worth[rows, cols].sum() <= worth.trace() + 1e-9:  # ties: keep the order
            perm = torch.arange(len(rows))
        matched = torch.as_tensor(score[np.arange(len(rows)), perm.numpy()])
        perms.append(perm)
        signs.append(torch.where(matched <= FLIP_BELOW, -1.0, 1.0))
    return torch.stack(perms), torch.stack(signs)


def reorder_sources(sources: Tensor, perm: Tensor, sign: Tensor) -> Tensor:
    """``sources [B, S, N]`` re-ordered and flipped as :func:`match_sources` found:
    ``sign[b, :, None] * sources[b, perm[b]]`` for every ``b``."""
    index = perm.to(sources.device)[:, :, None].expand(-1, -1, sources.shape[-1])
    return torch.gather(sources, 1, index) * sign.to(sources.device, sources.dtype)[:, :, None]


def iter_chunks(
    blocks: Iterable[Tensor], spans: list[tuple[int, int]], name: str = "signal"
) -> Iterator[Tensor]:
    """Cut consecutive non-overlapping ``[C, n]`` blocks into the overlapping ``spans``.

    Holds at most one chunk plus one block in memory. Raises ``EOFError`` naming ``name`` if
    the blocks end before the last span.
    """
    iterator = iter(blocks)
    buffer: Tensor | None = None
    buffer_start = 0
    for start, end in spans:
        if buffer is not None:
            buffer = buffer[:, start - buffer_start:]
        buffer_start = start
        while buffer is None or buffer.shape[-1] < end - start:
            try:
                block = next(iterator)
            except StopIteration:
                have = buffer_start + (0 if buffer is None else buffer.shape[-1])
                raise EOFError(f"{name}: audio ended at sample {have}, expected {spans[-1][1]}")
            buffer = block if buffer is None else torch.cat([buffer, block], dim=-1)
        yield buffer[:, : end - start]


def stitch(
    estimates: Iterable[Tensor], spans: list[tuple[int, int]], overlap: int
) -> Iterator[Tensor]:
    """Re-order and overlap-add per-chunk estimates into consecutive final blocks.

    Args:
        estimates: one ``[B, S, end - start]`` tensor per span of ``spans`` (from
            :func:`plan_chunks` with the same ``overlap``), in order.
        spans: the chunk spans.
        overlap: samples shared by consecutive chunks.

    Yields:
        ``[B, S, n]`` blocks whose concatenation along time is the ``[B, S, total]`` result.
    """
    ramp: Tensor | None = None
    pending: Tensor | None = None  # previous chunk's faded-out tail [B, S, overlap]
    previous_tail: Tensor | None = None  # the same tail before fading, for re-ordering
    last = len(spans) - 1
    for index, ((start, end), estimate) in enumerate(zip(spans, estimates)):
        if estimate.shape[-1] != end - start:
            raise ValueError(f"chunk {index}: {estimate.shape[-1]} samples, expected {end - start}")
        if ramp is None:
            ramp = fade_in(overlap, estimate.dtype).to(estimate.device)
        if index > 0 and overlap > 0:
            match = match_sources(previous_tail, estimate[..., :overlap])
            estimate = reorder_sources(estimate, *match)
            head = estimate[..., :overlap] * ramp + pending
            estimate = torch.cat([head, estimate[..., overlap:]], dim=-1)
        if index == last:
            yield estimate
            return
        cut = estimate.shape[-1] - overlap
        previous_tail = estimate[..., cut:]
        pending = previous_tail * (1 - ramp)
        yield estimate[..., :cut]


def separate_chunked(separate, mix: Tensor, chunk: int, overlap: int) -> Tensor:
    """Separate an in-memory ``mix[B, T]`` chunk by chunk; returns ``[B, S, T]``.

    ``separate`` maps ``[B, n] -> [B, S, n]``. Same result as streaming the mix from a file.
    """
    spans = plan_chunks(mix.shape[-1], chunk, overlap)
    estimates = (separate(mix[:, start:end]) for start, end in spans)
    return torch.cat(list(stitch(estimates, spans, overlap)), dim=-1)
