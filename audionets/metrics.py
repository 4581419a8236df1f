"""Separation and reconstruction metrics, and permutation-invariant training (PIT).

All metrics are in dB, computed over the last (time) dimension, with any leading dimensions
kept: ``si_snr(est[B, S, T], tgt[B, S, T]) -> [B, S]``.

PIT convention: a pairwise loss matrix ``M[b, i, j]`` is the loss of **estimate i** against
**target j**. A permutation ``perm[b]`` lists, for each target ``j``, the estimate assigned to
it, so ``reorder(estimates, perm)[b, j] = estimates[b, perm[b, j]]`` lines the estimates up with
the targets (the same convention as SpeechBrain's ``PitWrapper``).
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Callable

import torch

Pairwise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Up to this many sources :func:`pit` tries every permutation; above it, the Hungarian method.
EXHAUSTIVE_MAX_SOURCES = 4


def _prepare(estimate: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the shapes match and lift half-precision inputs to float32.

    Energies of a few seconds of audio overflow float16, so metrics are never computed in
    half precision, also when called under autocast (mixed-precision training).
    """
    if estimate.shape != target.shape:
        raise ValueError(
            f"estimate and target must have the same shape, got {tuple(estimate.shape)} "
            f"and {tuple(target.shape)}"
        )
    if estimate.dtype in (torch.float16, torch.bfloat16):
        estimate = estimate.float()
    if target.dtype in (torch.float16, torch.bfloat16):
        target = target.float()
    return estimate, target


def si_snr(
    estimate: torch.Tensor, target: torch.Tensor, zero_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """Scale-invariant SNR in dB of ``estimate [..., T]`` against ``target [..., T]`` -> ``[...]``.

    ``10 log10(|a t|^2 / |e - a t|^2)`` with ``a = <e, t> / |t|^2``, after removing each signal's
    mean when ``zero_mean``. ``eps`` sits where SpeechBrain's ``cal_si_snr`` puts it, so the two
    agree to float precision.
    """
    estimate, target = _prepare(estimate, target)
    if zero_mean:
        estimate = estimate - estimate.mean(dim=-1, keepdim=True)
        target = target - target.mean(dim=-1, keepdim=True)
    dot = (estimate * target).sum(dim=-1, keepdim=True)
    target_energy = target.pow(2).sum(dim=-1, keepdim=True)
    scale = dot / (target_energy + eps)
    noise = estimate - scale * target
    projection_energy = (scale.pow(2) * target_energy).squeeze(-1)  # |a t|^2 without forming a t
    ratio = projection_energy / (noise.pow(2).sum(dim=-1) + eps)
    return 10 * torch.log10(ratio + eps)


def _broadcast_mixture(mixture: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Expand ``mixture [..., T]`` to the shape of ``like [..., S, T]`` (or check it matches)."""
    if mixture.dim() == like.dim() - 1:
        mixture = mixture.unsqueeze(-2)
    return mixture.expand_as(like)


def si_snr_improvement(
    estimate: torch.Tensor, target: torch.Tensor, mixture: torch.Tensor, zero_mean: bool = True
) -> torch.Tensor:
    """SI-SNRi in dB: ``si_snr(estimate, target) - si_snr(mixture, target)``.

    ``estimate`` and ``target`` are ``[..., S, T]``; ``mixture`` is ``[..., T]`` (used as the
    estimate of every source) or already ``[..., S, T]``. Returns ``[..., S]``.
    """
    mixture = _broadcast_mixture(mixture, target)
    return si_snr(estimate, target, zero_mean) - si_snr(mixture, target, zero_mean)


def snr(estimate: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Plain SNR in dB, ``10 log10(|t|^2 / |t - e|^2)``, over the last dim -> ``[...]``.

    Not scale-invariant: the metric for reconstruction (autoencoders).
    """
    estimate, target = _prepare(estimate, target)
    ratio = target.pow(2).sum(dim=-1) / ((target - estimate).pow(2).sum(dim=-1) + eps)
    return 10 * torch.log10(ratio + eps)


def sdr(
    estimate: torch.Tensor,
    target: torch.Tensor,
    filter_length: int = 512,
    compute_permutation: bool = False,
) -> torch.Tensor:
    """BSS Eval v3 SDR in dB (as mir_eval's ``bss_eval_sources``): ``[..., S, T] -> [..., S]``.

    Computed with ``fast_bss_eval`` in float64 (agrees with mir_eval to about 1e-3 dB on
    ordinary signals; see tests/test_metrics.py). Sources are compared in the given order unless
    ``compute_permutation``, in which case each estimate is matched to the reference that
    maximises the mean SIR, as mir_eval does by default. Either way entry ``[..., j]`` is the
    SDR of reference ``j``. Not differentiable in a useful way: use :func:`si_snr` for training.
    Signals must be longer than ``filter_length`` samples (shorter ones give inf or about
    150 dB with fast_bss_eval): ValueError otherwise.
    """
    import fast_bss_eval

    estimate, target = _prepare(estimate, target)
    if estimate.dim() < 2:
        raise ValueError(f"sdr expects [..., S, T] tensors, got shape {tuple(estimate.shape)}")
    if estimate.shape[-1] <= filter_length:
        raise ValueError(f"sdr: {estimate.shape[-1]} samples are too short for BSS Eval with "
                         f"filter_length={filter_length}; use si_snr or a shorter filter_length")
    # NumPy backend: torch's batched CPU linalg.solve fails for 512x512 systems with several
    # threads in some builds ("Pivots given to lu_solve must all be greater or equal to 1").
    est = estimate.detach().to("cpu", torch.float64).numpy()
    ref = target.detach().to("cpu", torch.float64).numpy()
    if compute_permutation:
        values = fast_bss_eval.bss_eval_sources(ref, est, filter_length=filter_length)[0]
    else:
        # fast_bss_eval 0.1.4's fixed-order paths (compute_permutation=False, sdr_loss) pass a
        # wrongly shaped right-hand side to linalg.solve under NumPy 2 / recent torch; the
        # pairwise path works, and BSS Eval's SDR of a pair depends on that pair only.
        pairwise = -fast_bss_eval.sdr_loss(est, ref, filter_length=filter_length, pairwise=True)
        values = pairwise.diagonal(axis1=-2, axis2=-1)  # [..., S_ref, S_est] -> [..., S]
    return torch.from_numpy(values.copy()).to(device=estimate.device, dtype=estimate.dtype)


def sdr_improvement(
    estimate: torch.Tensor, target: torch.Tensor, mixture: torch.Tensor, filter_length: int = 512
) -> torch.Tensor:
    """SDRi in dB: ``sdr(estimate, target) - sdr(mixture, target)`` (mixture as every estimate).

    ``estimate``/``target`` ``[..., S, T]``, ``mixture`` ``[..., T]`` or ``[..., S, T]``.
    """
    mixture = _broadcast_mixture(mixture, target)
    return sdr(estimate, target, filter_length) - sdr(mixture, target, filter_length)


def pairwise_neg_si_snr(
    estimates: torch.Tensor, targets: torch.Tensor, zero_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """Negative SI-SNR of every estimate against every target: ``[B, S, T] x2 -> [B, S, S]``.

    Entry ``[b, i, j]`` is ``-si_snr(estimates[b, i], targets[b, j])``. All ``S^2`` pairs come
    from one batched matrix product of the (zero-mean) signals and their energies, without
    materialising ``S^2`` copies of the signals. The noise energy is expanded as
    ``|e|^2 - 2a<e,t> + a^2|t|^2``, which loses float32 precision above about 50 dB; the matrix
    is meant for choosing permutations (:func:`pit_si_snr_loss` recomputes the chosen pairs
    directly).
    """
    estimates, targets = _prepare(estimates, targets)
    if estimates.dim() != 3:
        raise ValueError(f"expected [B, S, T] tensors, got shape {tuple(estimates.shape)}")
    if zero_mean:
        estimates = estimates - estimates.mean(dim=-1, keepdim=True)
        targets = targets - targets.mean(dim=-1, keepdim=True)
    with torch.autocast(device_type=estimates.device.type, enabled=False):
        dot = torch.bmm(estimates, targets.transpose(1, 2))  # [B, S_est, S_tgt]
    target_energy = targets.pow(2).sum(dim=-1).unsqueeze(1)  # [B, 1, S_tgt]
    estimate_energy = estimates.pow(2).sum(dim=-1).unsqueeze(2)  # [B, S_est, 1]
    scale = dot / (target_energy + eps)
    projection_energy = scale.pow(2) * target_energy
    noise_energy = (estimate_energy - 2 * scale * dot + projection_energy).clamp(min=0)
    return -10 * torch.log10(projection_energy / (noise_energy + eps) + eps)


@lru_cache(maxsize=None)
def _permutations(num_sources: int, device: torch.device) -> torch.Tensor:
    """All permutations of ``range(num_sources)`` as a ``[S!, S]`` long tensor."""
    return torch.tensor(list(itertools.permutations(range(num_sources))), device=device)


def _hungarian(matrix: torch.Tensor) -> torch.Tensor:
    """Best assignment per example of ``matrix [B, S, S]`` (scipy), as ``perm [B, S]``."""
    from scipy.optimize import linear_sum_assignment

    costs = matrix.detach().to("cpu", torch.float64).numpy()
    perm = torch.empty(matrix.shape[:2], dtype=torch.long)
    for b, cost in enumerate(costs):
        rows, cols = linear_sum_assignment(cost)
        perm[b, torch.from_numpy(cols)] = torch.from_numpy(rows)
    return perm.to(matrix.device)


def pit_from_matrix(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise the mean loss over assignments of a pairwise matrix ``[B, S, S]``.

    Exhaustive over the ``S!`` permutations for ``S <= 4`` (sums gathered from the matrix, no
    loss recomputation), Hungarian algorithm (scipy, on the detached matrix) above. Returns
    ``(loss [B], perm [B, S])``; ``loss`` is differentiable through ``matrix``.
    """
    if matrix.dim() != 3 or matrix.shape[1] != matrix.shape[2]:
        raise ValueError(f"expected a [B, S, S] matrix, got shape {tuple(matrix.shape)}")
    num_sources = matrix.shape[-1]
    columns = torch.arange(num_sources, device=matrix.device)
    if num_sources <= EXHAUSTIVE_MAX_SOURCES:
        perms = _permutations(num_sources, matrix.device)  # [P, S]
        per_perm = matrix[:, perms, columns].mean(dim=-1)  # [B, P]
        loss, best = per_perm.min(dim=-1)
        return loss, perms[best]
    perm = _hungarian(matrix)
    loss = matrix.gather(1, perm.unsqueeze(1)).squeeze(1).mean(dim=-1)
    return loss, perm


def pit(
    pairwise_loss: Pairwise, estimates: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Permutation-invariant loss of ``estimates [B, S, ...]`` against ``targets [B, S, ...]``.

    ``pairwise_loss(estimates, targets)`` must return the ``[B, S, S]`` matrix whose entry
    ``[b, i, j]`` is the loss of estimate ``i`` against target ``j`` (e.g.
    :func:`pairwise_neg_si_snr`). Returns ``(loss [B], perm [B, S])``: the mean loss over
    sources under the best permutation, and that permutation (apply it with :func:`reorder`).
    """
    return pit_from_matrix(pairwise_loss(estimates, targets))


def reorder(estimates: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """``estimates [B, S, ...]`` reordered so that ``out[b, j] = estimates[b, perm[b, j]]``."""
    index = perm.reshape(*perm.shape, *([1] * (estimates.dim() - 2))).expand_as(estimates)
    return estimates.gather(1, index)


def pit_align(estimates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``estimates [B, S, T]`` reordered to line up with ``targets [B, S, T]`` by the permutation
    of best SI-SNR (chosen from :func:`pairwise_neg_si_snr` without gradient; the reordering
    keeps the gradient of the estimates)."""
    with torch.no_grad():
        _, perm = pit_from_matrix(pairwise_neg_si_snr(estimates, targets))
    return reorder(estimates, perm)


def pit_si_snr_loss(estimates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative SI-SNR over sources under the best permutation: ``[B, S, T] x2 -> [B]``.

    The permutation is chosen by :func:`pit_align`; the loss of the chosen pairs is then
    recomputed exactly with :func:`si_snr`, so values and gradients equal SpeechBrain's
    ``get_si_snr_with_pitwrapper`` (which is exhaustive for every ``S``; here ``S > 4`` uses
    the Hungarian method, which finds the same optimum).
    """
    return -si_snr(pit_align(estimates, targets), targets).mean(dim=-1)


def thresholded_mean(loss: torch.Tensor, threshold: float | None) -> torch.Tensor:
    """Mean of the per-example ``loss [B]`` over the examples above ``threshold``.

    SpeechBrain's SepFormer recipes (``threshold_byloss`` with ``threshold: -30``): examples
    already separated better than 30 dB SI-SNR stop contributing (and get no gradient), so easy
    examples do not dominate. The plain mean when ``threshold`` is None or no example is above it.
    """
    if threshold is not None:
        keep = loss > threshold
        if bool(keep.any()):
            return loss[keep].mean()
    return loss.mean()
