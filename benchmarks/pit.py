"""PIT SI-SNR loss: audionets.metrics.pit_si_snr_loss vs SpeechBrain's get_si_snr_with_pitwrapper.

For each number of sources: checks that both give the same per-example loss (max abs diff),
times forward + backward (warm-up, then the median of ``--repeats`` runs, the two alternating)
and measures the peak extra resident memory of one forward + backward in a fresh child process
(Linux VmHWM after resetting it; elsewhere the growth of ``ru_maxrss``).

SpeechBrain's wrapper loops over examples in Python and tries all S! permutations (720 for 6
sources) on a loss matrix built from S copies of the signals; ours builds the [B, S, S] matrix
with one batched matrix product, picks the permutation (exhaustive for S <= 4, Hungarian above)
and recomputes only the chosen pairs.

    python benchmarks/pit.py --threads 2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time
from typing import Callable

import torch

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ours(estimates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    from audionets.metrics import pit_si_snr_loss

    return pit_si_snr_loss(estimates, targets)


def speechbrain(estimates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    from speechbrain.nnet.losses import get_si_snr_with_pitwrapper

    # SpeechBrain's layout is [B, T, S]
    return get_si_snr_with_pitwrapper(targets.transpose(1, 2), estimates.transpose(1, 2))


LOSSES: dict[str, Loss] = {"audionets": ours, "speechbrain": speechbrain}


def make_batch(batch: int, sources: int, samples: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    targets = torch.randn(batch, sources, samples, generator=generator)
    shuffle = torch.stack([torch.randperm(sources, generator=generator) for _ in range(batch)])
    noisy = targets + 0.8 * torch.randn(batch, sources, samples, generator=generator)
    estimates = noisy.gather(1, shuffle[..., None].expand_as(noisy))
    return estimates, targets


def step(loss_fn: Loss, estimates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    leaf = estimates.detach().clone().requires_grad_(True)
    loss = loss_fn(leaf, targets)
    loss.sum().backward()
    return loss.detach()


def time_pair(first: Loss, second: Loss, estimates, targets, warmup: int,
              repeats: int) -> tuple[float, float]:
    """Median seconds of a step of ``first`` and of ``second``, the repeats alternating so
    that both see the same machine load."""
    for _ in range(warmup):
        step(first, estimates, targets)
        step(second, estimates, targets)
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for loss_fn, record in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            step(loss_fn, estimates, targets)
            record.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _peak_child(name: str, shape: tuple[int, int, int], threads: int, queue) -> None:
    torch.set_num_threads(threads)
    loss_fn = LOSSES[name]
    step(loss_fn, *make_batch(1, shape[1], 64))  # imports and lazy initialisation first
    estimates, targets = make_batch(*shape)
    try:  # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        before = _status_kib("VmRSS")
        step(loss_fn, estimates, targets)
        queue.put((_status_kib("VmHWM") - before) / 1024)
    except OSError:  # elsewhere: growth of the lifetime peak (ru_maxrss, KiB on Linux)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        step(loss_fn, estimates, targets)
        queue.put((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)


def peak_memory_mib(name: str, shape: tuple[int, int, int], threads: int) -> float:
    """Peak resident-memory growth of one forward + backward in a fresh process, in MiB."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_peak_child, args=(name, shape, threads, queue))
    process.start()
    result = queue.get(timeout=600)
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--sample-rate", type=int, default=8000)
    parser.add_argument("--sources", type=int, nargs="+", default=[2, 3, 4, 6])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    samples = int(args.seconds * args.sample_rate)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, "
          f"{args.seconds:g} s at {args.sample_rate} Hz; forward + backward, median of "
          f"{args.repeats} after {args.warmup} warm-up runs")
    header = f"{'S':>2} {'max|diff|':>10} {'ours ms':>9} {'SB ms':>9} {'SB/ours':>8}"
    if not args.no_memory:
        header += f" {'ours MiB':>9} {'SB MiB':>8}"
    print(header)
    for sources in args.sources:
        estimates, targets = make_batch(args.batch, sources, samples)
        ours_loss = step(ours, estimates, targets)
        sb_loss = step(speechbrain, estimates, targets)
        diff = (ours_loss - sb_loss).abs().max().item()
        t_ours, t_sb = time_pair(ours, speechbrain, estimates, targets, args.warmup,
                                 args.repeats)
        line = (f"{sources:>2} {diff:>10.2e} {1e3 * t_ours:>9.2f} {1e3 * t_sb:>9.2f} "
                f"{t_sb / t_ours:>8.1f}")
        if not args.no_memory:
            shape = (args.batch, sources, samples)
            line += (f" {peak_memory_mib('audionets', shape, args.threads):>9.1f}"
                     f" {peak_memory_mib('speechbrain', shape, args.threads):>8.1f}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
