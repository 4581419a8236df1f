import itertools
import warnings

import numpy as np
import pytest
import torch

from audionets import metrics

T = 2000


def _numpy_si_snr(est: np.ndarray, tgt: np.ndarray) -> float:
    """Textbook SI-SNR (Le Roux et al. 2019) in float64."""
    est = est - est.mean()
    tgt = tgt - tgt.mean()
    s_target = np.dot(est, tgt) / np.dot(tgt, tgt) * tgt
    e_noise = est - s_target
    return 10 * np.log10(np.dot(s_target, s_target) / np.dot(e_noise, e_noise))


def _mixture_batch(batch: int, sources: int, noise: float = 0.5):
    targets = torch.randn(batch, sources, T)
    estimates = targets + noise * torch.randn(batch, sources, T)
    return estimates, targets


def test_si_snr_matches_numpy_formula():
    est, tgt = _mixture_batch(3, 2)
    ours = metrics.si_snr(est, tgt)
    assert ours.shape == (3, 2)
    for b, s in itertools.product(range(3), range(2)):
        ref = _numpy_si_snr(est[b, s].double().numpy(), tgt[b, s].double().numpy())
        assert ours[b, s].item() == pytest.approx(ref, abs=1e-4)


def test_si_snr_matches_torchmetrics():
    from torchmetrics.functional.audio import scale_invariant_signal_noise_ratio

    est, tgt = _mixture_batch(4, 3, noise=1.0)
    ref = scale_invariant_signal_noise_ratio(est, tgt)
    torch.testing.assert_close(metrics.si_snr(est, tgt), ref, atol=1e-4, rtol=1e-5)


def test_si_snr_invariances():
    est, tgt = _mixture_batch(2, 2)
    base = metrics.si_snr(est, tgt)
    torch.testing.assert_close(metrics.si_snr(7.5 * est, tgt), base, atol=1e-4, rtol=0)
    torch.testing.assert_close(metrics.si_snr(est + 0.3, tgt - 0.2), base, atol=1e-4, rtol=0)
    assert not torch.allclose(metrics.si_snr(est + 0.3, tgt, zero_mean=False), base, atol=1e-2)
    torch.testing.assert_close(metrics.si_snr(est, tgt), base)  # inputs not modified in place


def test_snr_and_improvements():
    est, tgt = _mixture_batch(2, 2)
    expected = 10 * torch.log10(tgt.pow(2).sum(-1) / (tgt - est).pow(2).sum(-1))
    torch.testing.assert_close(metrics.snr(est, tgt), expected)
    assert (metrics.snr(2 * est, tgt) < metrics.snr(est, tgt)).all()  # not scale invariant
    mix = tgt.sum(1)
    improvement = metrics.si_snr_improvement(est, tgt, mix)
    base = torch.stack([metrics.si_snr(mix, tgt[:, s]) for s in range(2)], dim=1)
    torch.testing.assert_close(improvement, metrics.si_snr(est, tgt) - base)
    torch.testing.assert_close(
        metrics.si_snr_improvement(est, tgt, mix.unsqueeze(1).expand_as(tgt)), improvement
    )


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="same shape"):
        metrics.si_snr(torch.zeros(2, 10), torch.zeros(2, 11))


def test_sdr_matches_mir_eval():
    from mir_eval.separation import bss_eval_sources

    torch.manual_seed(1)
    tgt = torch.randn(1, 2, 3000, dtype=torch.float64)
    # estimates with leakage of the other source and a short echo: what BSS Eval separates
    est = tgt + 0.3 * tgt.flip(1) + 0.2 * torch.roll(tgt, 5, -1) + 0.1 * torch.randn_like(tgt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref, *_ = bss_eval_sources(tgt[0].numpy(), est[0].numpy(), compute_permutation=False)
    np.testing.assert_allclose(metrics.sdr(est, tgt)[0].numpy(), ref, atol=1e-3)


def test_sdr_refuses_signals_not_longer_than_its_filter():
    # fast_bss_eval gives inf (or about 150 dB) there, where mir_eval gives ordinary values
    tgt = torch.randn(1, 2, 256, dtype=torch.float64)
    with pytest.raises(ValueError, match="256 samples are too short for BSS Eval"):
        metrics.sdr(tgt + 0.1 * torch.randn_like(tgt), tgt)
    assert torch.isfinite(metrics.sdr(tgt + 0.1 * torch.randn_like(tgt), tgt, filter_length=64)).all()


def test_sdr_permutation_and_improvement():
    tgt = torch.randn(2, 2, 2000, dtype=torch.float64)
    est = tgt + 0.3 * tgt.flip(1) + 0.1 * torch.randn_like(tgt)
    ours = metrics.sdr(est, tgt, filter_length=32)
    # permutation search: estimates given in swapped order come back per reference
    found = metrics.sdr(est.flip(1), tgt, filter_length=32, compute_permutation=True)
    np.testing.assert_allclose(found.numpy(), ours.numpy(), atol=1e-6)
    swapped = metrics.sdr(est.flip(1), tgt, filter_length=32)
    assert (swapped < ours - 10).all()
    mix = tgt.sum(1)
    improvement = metrics.sdr_improvement(est, tgt, mix, filter_length=32)
    baseline = metrics.sdr(mix[:, None].expand_as(tgt), tgt, filter_length=32)
    torch.testing.assert_close(improvement, ours - baseline)
    assert improvement.dtype == torch.float64 and (improvement > 0).all()


@pytest.mark.parametrize("sources", [2, 3])
def test_pit_si_snr_matches_speechbrain(sources):
    from speechbrain.nnet.losses import get_si_snr_with_pitwrapper

    torch.manual_seed(sources)
    tgt = torch.randn(4, sources, T)
    est = tgt[:, torch.randperm(sources)] + 0.7 * torch.randn(4, sources, T)
    ours = metrics.pit_si_snr_loss(est, tgt)
    theirs = get_si_snr_with_pitwrapper(tgt.transpose(1, 2), est.transpose(1, 2).clone())
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-5)


def test_pairwise_matrix_matches_direct_si_snr():
    est, tgt = _mixture_batch(3, 3, noise=2.0)
    matrix = metrics.pairwise_neg_si_snr(est, tgt)
    assert matrix.shape == (3, 3, 3)
    for i, j in itertools.product(range(3), range(3)):
        torch.testing.assert_close(matrix[:, i, j], -metrics.si_snr(est[:, i], tgt[:, j]),
                                   atol=1e-3, rtol=1e-4)


def test_pit_recovers_permutation_and_is_order_invariant():
    tgt = torch.randn(2, 3, T)
    order = torch.tensor([[2, 0, 1], [1, 2, 0]])
    est = metrics.reorder(tgt, order) + 0.1 * torch.randn(2, 3, T)
    loss, perm = metrics.pit(metrics.pairwise_neg_si_snr, est, tgt)
    assert torch.equal(perm, torch.argsort(order, dim=1))
    assert (metrics.reorder(est, perm) - tgt).abs().max() < 1.0  # lined up with the targets
    expected = -metrics.si_snr(metrics.reorder(est, perm), tgt).mean(-1)
    torch.testing.assert_close(loss, expected, atol=1e-3, rtol=1e-4)
    shuffled = est[:, torch.tensor([1, 2, 0])]
    torch.testing.assert_close(metrics.pit_si_snr_loss(shuffled, tgt),
                               metrics.pit_si_snr_loss(est, tgt))


def test_reorder_convention():
    est = torch.arange(6.0).reshape(2, 3)[..., None].expand(2, 3, 4)
    perm = torch.tensor([[2, 0, 1], [0, 2, 1]])
    out = metrics.reorder(est, perm)
    assert out[:, :, 0].tolist() == [[2.0, 0.0, 1.0], [3.0, 5.0, 4.0]]


@pytest.mark.parametrize("sources", [4, 5])
def test_hungarian_equals_exhaustive(sources):
    torch.manual_seed(sources)
    matrix = torch.randn(16, sources, sources)
    perms = torch.tensor(list(itertools.permutations(range(sources))))
    brute = matrix[:, perms, torch.arange(sources)].mean(-1).min(-1).values
    hungarian = metrics._hungarian(matrix)
    torch.testing.assert_close(
        matrix.gather(1, hungarian.unsqueeze(1)).squeeze(1).mean(-1), brute
    )
    loss, perm = metrics.pit_from_matrix(matrix)
    torch.testing.assert_close(loss, brute)
    assert sorted(perm[0].tolist()) == list(range(sources))


def test_pit_six_sources_finds_the_shuffle():
    tgt = torch.randn(2, 6, 800)
    order = torch.stack([torch.randperm(6) for _ in range(2)])
    est = metrics.reorder(tgt, order) + 0.05 * torch.randn_like(tgt)
    _, perm = metrics.pit(metrics.pairwise_neg_si_snr, est, tgt)
    inverse = torch.argsort(order, dim=1)
    assert torch.equal(perm, inverse)


def test_pit_gradients_flow_to_estimates():
    est, tgt = _mixture_batch(2, 3)
    est.requires_grad_(True)
    metrics.pit_si_snr_loss(est, tgt).sum().backward()
    assert est.grad is not None and est.grad.abs().sum() > 0
    est.grad = None
    loss, _ = metrics.pit(metrics.pairwise_neg_si_snr, est, tgt)
    loss.sum().backward()
    assert torch.isfinite(est.grad).all() and est.grad.abs().sum() > 0
    est5 = torch.randn(1, 5, 400, requires_grad=True)
    metrics.pit(metrics.pairwise_neg_si_snr, est5, torch.randn(1, 5, 400))[0].sum().backward()
    assert est5.grad.abs().sum() > 0


def test_threshold_drops_easy_examples_like_speechbrain():
    tgt = torch.randn(3, 2, T)
    noise = torch.tensor([1e-3, 0.5, 1.0])[:, None, None]  # example 0: SI-SNR about 60 dB
    est = (tgt + noise * torch.randn_like(tgt)).requires_grad_(True)
    raw = metrics.pit_si_snr_loss(est, tgt)
    assert raw[0] < -30 < raw[1:].min()
    loss = metrics.thresholded_mean(raw, -30.0)
    # SpeechBrain's recipe reduction, written out: loss[loss > threshold].mean()
    torch.testing.assert_close(loss, raw[1:].mean())
    loss.backward()
    assert est.grad[0].abs().sum() == 0 and est.grad[1:].abs().sum() > 0
    # every example below the threshold, or no threshold: the plain mean
    torch.testing.assert_close(metrics.thresholded_mean(raw, 100.0), raw.mean())
    torch.testing.assert_close(metrics.thresholded_mean(raw, None), raw.mean())


def test_half_precision_inputs_are_computed_in_float32():
    est, tgt = _mixture_batch(2, 2)
    loud_est, loud_tgt = 200 * est, 200 * tgt  # energies beyond float16's range
    expected = metrics.si_snr(loud_est, loud_tgt)
    half = metrics.si_snr(loud_est.half(), loud_tgt.half())
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    torch.testing.assert_close(half, expected, atol=0.05, rtol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        matrix = metrics.pairwise_neg_si_snr(est, tgt)
    assert matrix.dtype == torch.float32
    torch.testing.assert_close(matrix, metrics.pairwise_neg_si_snr(est, tgt))
