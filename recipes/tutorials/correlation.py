"""Convolution vs correlation: Conv1d slides the kernel without flipping it (a correlation).

    python recipes/tutorials/correlation.py --out-dir outputs/tutorials

``y(t) = sum_t' x(t + t') h(t')``: what deep-learning libraries call a convolution is the
signal-processing correlation. ``torch.nn.functional.conv1d`` equals ``numpy.correlate`` and,
for an asymmetric kernel, differs from ``numpy.convolve`` (which flips the kernel). A
correlation is a dot product of the kernel with every window of the signal, so it finds a
template: a chirp hidden in noise gives the largest output where the chirp starts. Writes
``correlation.png``.
"""

from __future__ import annotations

import numpy as np
import torch

from common import base_parser, parse, pyplot, save_figure


def conv1d_valid(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """PyTorch's Conv1d (no padding, stride 1) of one signal ``x[T]`` with one kernel ``h[K]``:
    ``y[T - K + 1]``."""
    out = torch.nn.functional.conv1d(torch.from_numpy(x).view(1, 1, -1),
                                     torch.from_numpy(h).view(1, 1, -1))
    return out.view(-1).numpy()


def chirp(length: int, sample_rate: float) -> np.ndarray:
    """A Hann-windowed linear chirp from 0.05 to 0.25 of the sample rate, ``[length]``."""
    t = np.arange(length) / sample_rate
    f0, f1 = 0.05 * sample_rate, 0.25 * sample_rate
    phase = 2 * np.pi * (f0 * t + 0.5 * (f1 - f0) / t[-1] * t**2)
    return np.hanning(length) * np.sin(phase)


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=4000, help="samples of the noisy signal")
    parser.add_argument("--template", type=int, default=200, help="samples of the chirp")
    parser.add_argument("--position", type=int, default=2600, help="where the chirp starts")
    parser.add_argument("--snr-db", type=float, default=-6.0,
                        help="chirp-to-noise power ratio over the chirp's span")
    args = parse(parser, argv)
    rng = np.random.default_rng(args.seed)

    # 1. Conv1d is correlation, not convolution (an asymmetric kernel tells them apart)
    x = rng.standard_normal(36)
    h = np.array([1.0, 0.5, -0.25, -1.0, 2.0])
    torch_out = conv1d_valid(x, h)
    corr, conv = np.correlate(x, h, mode="valid"), np.convolve(x, h, mode="valid")
    results = {"max_diff_correlate": float(np.abs(torch_out - corr).max()),
               "max_diff_convolve": float(np.abs(torch_out - conv).max()),
               "max_diff_convolve_flipped": float(np.abs(torch_out - np.convolve(
                   x, h[::-1], mode="valid")).max())}

    # 2. template matching: the dot product with every window peaks where the template is
    template = chirp(args.template, 8000.0)
    noise_std = np.sqrt(np.mean(template**2) / 10 ** (args.snr_db / 10))
    signal = noise_std * rng.standard_normal(args.length)
    signal[args.position:args.position + args.template] += template
    scores = conv1d_valid(signal, template)
    away = np.delete(scores, range(max(0, args.position - args.template),
                                   args.position + args.template))  # scores off the template
    results.update(position=args.position, peak=int(np.argmax(scores)),
                   peak_to_second=float(scores.max() / away.max()))
    print(f"|conv1d - numpy.correlate| max {results['max_diff_correlate']:.1e}, "
          f"|conv1d - numpy.convolve| max {results['max_diff_convolve']:.2f} "
          f"(with the kernel flipped: {results['max_diff_convolve_flipped']:.1e})")
    print(f"template at {args.position}, correlation peak at {results['peak']} "
          f"(peak / largest score away from it: {results['peak_to_second']:.2f})")

    plt = pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(8, 7.5), gridspec_kw={"hspace": 0.6})
    t = np.arange(len(torch_out))
    axes[0].plot(t, conv, color="tab:orange", linewidth=4, alpha=0.5, label="numpy.convolve")
    axes[0].plot(t, corr, color="tab:blue", linewidth=4, alpha=0.5, label="numpy.correlate")
    axes[0].plot(t, torch_out, "k.", markersize=5, label="torch conv1d")
    axes[0].set(title=f"kernel {h.tolist()}: conv1d lies on the correlation, not the convolution",
                xlabel="output index")
    axes[0].legend(fontsize=8, ncol=3, loc="lower left")
    axes[1].plot(signal, color="0.6", linewidth=0.6, label="noisy signal")
    axes[1].plot(np.arange(args.position, args.position + args.template), template, "tab:red",
                 linewidth=0.8, label="the chirp inside it")
    axes[1].set(title=f"a chirp hidden in noise ({args.snr_db:g} dB), starting at "
                      f"{args.position}", xlabel="sample")
    axes[1].legend(fontsize=8, loc="upper left")
    axes[2].plot(scores, color="tab:blue", linewidth=0.7)
    axes[2].axvline(args.position, color="tab:red", linestyle=":", label="true position")
    axes[2].set(title=f"conv1d with the chirp as kernel: peak at {results['peak']}",
                xlabel="window start", ylabel="dot product")
    axes[2].legend(fontsize=8, loc="upper left")
    save_figure(fig, args.out_dir / "correlation.png")
    return results


if __name__ == "__main__":
    main()
