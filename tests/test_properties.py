"""Property-based tests (hypothesis) of the metric invariances and the STFT round trip."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from audionets import frontends, metrics

SETTINGS = settings(max_examples=20, deadline=None)


def _signals(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-3, 1e3), length=st.integers(16, 600),
       noise=st.floats(0.01, 3.0))
def test_si_snr_invariant_to_positive_scaling(seed, scale, length, noise):
    target = _signals(seed, (3, length))
    estimate = target + noise * _signals(seed + 1, (3, length))
    # eps=0: the exact formula. With the default eps=1e-8 the invariance holds only while the
    # noise energy is much larger than eps (checked for a moderate scale in test_metrics.py).
    base = metrics.si_snr(estimate, target, eps=0.0)
    torch.testing.assert_close(metrics.si_snr(scale * estimate, target, eps=0.0), base,
                               atol=1e-8, rtol=1e-8)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), sources=st.integers(2, 6), order=st.randoms(),
       noise=st.floats(0.05, 2.0))
def test_pit_invariant_to_order_of_estimates(seed, sources, order, noise):
    targets = _signals(seed, (2, sources, 256))
    estimates = targets + noise * _signals(seed + 1, (2, sources, 256))
    shuffle = list(range(sources))
    order.shuffle(shuffle)
    shuffled = estimates[:, shuffle]
    loss, perm = metrics.pit(metrics.pairwise_neg_si_snr, estimates, targets)
    loss_s, perm_s = metrics.pit(metrics.pairwise_neg_si_snr, shuffled, targets)
    torch.testing.assert_close(loss_s, loss)
    torch.testing.assert_close(metrics.reorder(shuffled, perm_s), metrics.reorder(estimates, perm))
    torch.testing.assert_close(metrics.pit_si_snr_loss(shuffled, targets),
                               metrics.pit_si_snr_loss(estimates, targets))


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), length=st.integers(1, 3000),
       n_fft=st.sampled_from([16, 64, 256]), hop_divisor=st.sampled_from([2, 4]))
def test_stft_round_trip_any_length(seed, length, n_fft, hop_divisor):
    wav = _signals(seed, (2, length)).float()
    stft = frontends.STFT(n_fft=n_fft, hop_length=n_fft // hop_divisor, mode="complex")
    torch.testing.assert_close(stft.inverse(stft(wav), length=length), wav, atol=1e-5, rtol=0)
