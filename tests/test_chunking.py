"""Chunked separation: chunk plan, cross-fade, source re-ordering, streaming, exactness."""

import itertools

import numpy as np
import pytest
import torch

from audionets.inference import chunking
import audionets.models  # noqa: F401  (registers the models)
from audionets.registry import MODELS


@pytest.mark.parametrize(
    "total, chunk, overlap",
    [(1, 10, 2), (10, 10, 5), (11, 10, 5), (100, 10, 0), (1000, 64, 16), (1001, 64, 32),
     (97, 40, 7)],
)
def test_plan_covers_signal_with_exact_overlaps(total, chunk, overlap):
    spans = chunking.plan_chunks(total, chunk, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == total
    for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
        assert e0 - s1 == overlap  # consecutive chunks share exactly `overlap` samples
        assert e0 - s0 == chunk
    last = spans[-1][1] - spans[-1][0]
    assert last <= chunk and (len(spans) == 1 or last > overlap)


def test_plan_rejects_overlap_above_half_chunk():
    with pytest.raises(ValueError, match="overlap"):
        chunking.plan_chunks(100, 10, 6)


def test_crossfade_is_symmetric_and_monotonic():
    ramp = chunking.fade_in(37, torch.float64)
    # the fade-out 1 - ramp is the fade-in played backwards: both chunks weigh the same
    torch.testing.assert_close(1 - ramp, ramp.flip(0))
    assert torch.all(ramp[1:] > ramp[:-1]) and 0 < ramp[0] < 0.01 and 0.99 < ramp[-1] < 1


def worth(correlation: float) -> float:
    """A pair's correlation after the flip match_sources would give it."""
    return -correlation if correlation <= chunking.FLIP_BELOW else correlation


def test_match_sources_matches_brute_force():
    gen = torch.Generator().manual_seed(1)
    prev = torch.randn(4, 3, 200, generator=gen)
    cur = torch.randn(4, 3, 200, generator=gen)
    perm, sign = chunking.match_sources(prev, cur)
    assert torch.equal(sign, torch.ones(4, 3))  # weak correlations never flip a source
    for b in range(4):
        p, c = prev[b].numpy(), cur[b].numpy()
        p = p - p.mean(-1, keepdims=True)
        c = c - c.mean(-1, keepdims=True)
        corr = (p / np.linalg.norm(p, axis=-1, keepdims=True)) @ (
            c / np.linalg.norm(c, axis=-1, keepdims=True)).T
        best = max(itertools.permutations(range(3)),
                   key=lambda q: sum(worth(corr[i, q[i]]) for i in range(3)))
        assert perm[b].tolist() == list(best)


def test_weak_anti_correlation_is_no_match():
    # correlations [[0.10, -0.35], [-0.30, 0.05]]: swapping would pair anti-correlated sources
    # that are not flipped (above -0.5), so the plain order (+0.10, +0.05) is the better one
    basis = torch.linalg.qr(torch.randn(400, 4, dtype=torch.float64))[0].T  # orthonormal rows
    basis = basis - basis.mean(-1, keepdim=True)
    basis = torch.linalg.qr(basis.T)[0].T  # still orthonormal, and zero-mean
    wanted = torch.tensor([[0.10, -0.35], [-0.30, 0.05]], dtype=torch.float64)
    rest = (1 - wanted.pow(2).sum(0)).sqrt()
    current = wanted.T @ basis[:2] + rest[:, None] * basis[2:]
    perm, sign = chunking.match_sources(basis[None, :2], current[None])
    assert perm.tolist() == [[0, 1]] and sign.tolist() == [[1.0, 1.0]]


def test_match_sources_finds_shuffled_inverted_sources_and_keeps_order_on_ties():
    sources = torch.randn(2, 4, 300)
    order = torch.tensor([[2, 0, 3, 1], [1, 0, 3, 2]])
    flips = torch.tensor([[1.0, -1.0, 1.0, -1.0], [-1.0, -1.0, 1.0, 1.0]])
    shuffled = torch.gather(sources, 1, order[:, :, None].expand(-1, -1, 300)) * flips[..., None]
    perm, sign = chunking.match_sources(sources, shuffled + 0.1 * torch.randn_like(shuffled))
    assert torch.equal(torch.gather(order, 1, perm), torch.arange(4).expand(2, 4))
    assert torch.equal(sign, torch.gather(flips, 1, perm))
    silent = torch.zeros(1, 3, 50)
    perm, sign = chunking.match_sources(silent, torch.randn(1, 3, 50))
    assert perm.tolist() == [[0, 1, 2]] and sign.tolist() == [[1.0, 1.0, 1.0]]


def _oracle(sources, spans, seed=0, flip=False):
    """A 'separator' that returns the true sources of each chunk in a random order (and, with
    ``flip``, each with a random sign, as an SI-SNR-trained model without a mask may)."""
    gen = torch.Generator().manual_seed(seed)
    calls = iter(spans)

    def separate(mix):
        start, end = next(calls)
        assert mix.shape[-1] == end - start
        piece = sources[..., start:end]
        order = torch.randperm(sources.shape[1], generator=gen)
        signs = torch.randint(0, 2, (sources.shape[1], 1), generator=gen) * 2 - 1 if flip else 1
        return piece[:, order] * signs

    return separate


@pytest.mark.parametrize("flip", [False, True], ids=["order", "order-and-sign"])
@pytest.mark.parametrize("total, chunk, overlap",
                         [(5000, 1000, 250), (4321, 800, 400), (999, 1000, 100)])
def test_stitch_reorders_and_reconstructs_oracle_sources(total, chunk, overlap, flip):
    sources = torch.randn(2, 3, total)
    spans = chunking.plan_chunks(total, chunk, overlap)
    out = chunking.separate_chunked(_oracle(sources, spans, flip=flip), sources.sum(1), chunk,
                                    overlap)
    assert out.shape == sources.shape
    # each batch item comes out in the order (and sign) of its first chunk, for the whole signal
    first, sign = chunking.match_sources(sources[..., :100], out[..., :100])
    aligned = torch.gather(out, 1, first[:, :, None].expand(-1, -1, total)) * sign[..., None]
    torch.testing.assert_close(aligned, sources, atol=1e-5, rtol=1e-5)


def test_iter_chunks_from_blocks_of_any_size():
    signal = torch.randn(2, 1234)
    spans = chunking.plan_chunks(1234, 300, 100)
    for block in (1, 7, 200, 5000):
        blocks = (signal[:, i:i + block] for i in range(0, 1234, block))
        for (start, end), piece in zip(spans, chunking.iter_chunks(blocks, spans), strict=True):
            assert torch.equal(piece, signal[:, start:end])


def test_iter_chunks_reports_early_end():
    spans = chunking.plan_chunks(100, 40, 10)
    with pytest.raises(EOFError, match="x.wav: audio ended at sample 60"):
        list(chunking.iter_chunks([torch.zeros(1, 60)], spans, name="x.wav"))


def test_stitch_is_streaming():
    """The first block comes out after one estimate: memory does not grow with length."""
    spans = chunking.plan_chunks(10_000, 1000, 100)
    consumed = []

    def estimates():
        for i, (start, end) in enumerate(spans):
            consumed.append(i)
            yield torch.ones(1, 2, end - start)

    stream = chunking.stitch(estimates(), spans, 100)
    first = next(stream)
    assert consumed == [0] and first.shape == (1, 2, 900)
    rest = list(stream)
    total = torch.cat([first, *rest], dim=-1)
    torch.testing.assert_close(total, torch.ones(1, 2, 10_000))  # fades sum to one


def test_single_chunk_equals_one_forward_pass():
    model = MODELS.build("sepformer", encoder_channels=16, d_model=16, chunk_size=20, num_blocks=1,
                         intra_layers=1, inter_layers=1, nhead=2, d_ffn=32).eval()
    mix = torch.randn(2, 1600)
    with torch.inference_mode():
        ref = model(mix)
        out = chunking.separate_chunked(model, mix, chunk=1600, overlap=400)
    assert torch.equal(out, ref)
