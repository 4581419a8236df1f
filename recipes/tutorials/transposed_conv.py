"""Transposed convolution = insert zeros, then filter at stride 1 with the flipped kernel.

    python recipes/tutorials/transposed_conv.py --out-dir outputs/tutorials

``ConvTranspose1d(kernel h, stride s)`` upsamples as in DSP: put ``s - 1`` zeros between the
input samples, then convolve at stride 1 (a convolution flips the kernel; in the "correlation"
that Conv1d computes, the kernel is flipped by hand), padded by ``K - 1`` on both sides and
trimmed by the layer's ``padding``. The script checks that equality numerically, checks the
output-length formulas of strided and transposed convolution

    conv:       floor((L + 2p - d (K - 1) - 1) / s) + 1
    transposed: (L - 1) s - 2p + d (K - 1) + output_padding + 1

against PyTorch over a grid of (length, kernel, stride, padding, dilation) settings, and that
the transposed convolution is the adjoint of the strided one (``<conv(x), y> = <x, convT(y)>``,
which is why it is also the strided convolution's gradient). Writes ``transposed_conv.png``.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from common import base_parser, parse, pyplot, save_figure


def zero_insert(x: torch.Tensor, stride: int) -> torch.Tensor:
    """``x[..., L] -> [..., (L - 1) * stride + 1]`` with ``stride - 1`` zeros between samples."""
    out = x.new_zeros(*x.shape[:-1], (x.shape[-1] - 1) * stride + 1)
    out[..., ::stride] = x
    return out


def upsample_by_filtering(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int = 0,
                          output_padding: int = 0) -> torch.Tensor:
    """What ``conv_transpose1d(x, weight, stride, padding, output_padding)`` computes, the DSP
    way: zero insertion, then a stride-1 conv1d with the kernel flipped in time (and its
    in/out channels swapped), padded by ``K - 1 - padding`` (plus ``output_padding`` on the
    right). ``x[B, C_in, L]``, ``weight[C_in, C_out, K]`` -> ``[B, C_out, L_out]``."""
    kernel = weight.shape[-1]
    flipped = weight.flip(-1).transpose(0, 1)  # [C_out, C_in, K]
    edge = kernel - 1 - padding
    upsampled = F.pad(zero_insert(x, stride), (edge, edge + output_padding))
    return F.conv1d(upsampled, flipped)


def conv_length(length: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Frames out of a Conv1d (the formula of the docstring)."""
    return (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def transposed_length(length: int, kernel: int, stride: int, padding: int, dilation: int,
                      output_padding: int) -> int:
    """Samples out of a ConvTranspose1d (the formula of the docstring)."""
    return (length - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def check_lengths(lengths, kernels, strides, paddings, dilations) -> dict:
    """Compare both formulas with the shapes PyTorch produces for every setting of the grid.

    Returns the number of settings checked and the mismatches (none expected).
    """
    checked, mismatches = 0, []
    for length, kernel, stride, padding, dilation in itertools.product(
            lengths, kernels, strides, paddings, dilations):
        x = torch.zeros(1, 1, length)
        if conv_length(length, kernel, stride, padding, dilation) >= 1:
            got = F.conv1d(x, torch.zeros(1, 1, kernel), stride=stride, padding=padding,
                           dilation=dilation).shape[-1]
            checked += 1
            if got != conv_length(length, kernel, stride, padding, dilation):
                mismatches.append(("conv", length, kernel, stride, padding, dilation, got))
        for output_padding in range(stride):  # PyTorch allows output_padding < stride
            want = transposed_length(length, kernel, stride, padding, dilation, output_padding)
            if want < 1:
                continue
            got = F.conv_transpose1d(x, torch.zeros(1, 1, kernel), stride=stride,
                                     padding=padding, output_padding=output_padding,
                                     dilation=dilation).shape[-1]
            checked += 1
            if got != want:
                mismatches.append(("transposed", length, kernel, stride, padding, dilation,
                                   output_padding, got))
    return {"checked": checked, "mismatches": mismatches}


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    args = parse(parser, argv)
    generator = torch.Generator().manual_seed(args.seed)

    # 1. equality of ConvTranspose1d and zero insertion + flipped-kernel filtering
    max_diff, compared = 0.0, 0
    settings = [(c_in, c_out, kernel, stride, padding, output_padding)
                for c_in, c_out in ((1, 1), (3, 2))
                for kernel in (1, 2, 3, 4, 7)
                for stride in (1, 2, 3, 4)
                for padding in range(kernel)
                for output_padding in range(stride)]
    for c_in, c_out, kernel, stride, padding, output_padding in settings:
        x = torch.randn(2, c_in, 9, generator=generator, dtype=torch.float64)
        weight = torch.randn(c_in, c_out, kernel, generator=generator, dtype=torch.float64)
        if transposed_length(9, kernel, stride, padding, 1, output_padding) < 1:
            continue
        ours = upsample_by_filtering(x, weight, stride, padding, output_padding)
        torch_out = F.conv_transpose1d(x, weight, stride=stride, padding=padding,
                                       output_padding=output_padding)
        max_diff = max(max_diff, (ours - torch_out).abs().max().item())
        compared += 1

    # 2. the output-length formulas over a grid
    lengths = range(1, 13) if args.quick else range(1, 41)
    lengths_check = check_lengths(lengths, kernels=range(1, 8), strides=range(1, 6),
                                  paddings=range(0, 4), dilations=(1, 2, 3))

    # 3. adjointness: <conv(x), y> == <x, conv_transpose(y)> for the same weight and stride
    x = torch.randn(1, 3, 40, generator=generator, dtype=torch.float64)
    weight = torch.randn(4, 3, 5, generator=generator, dtype=torch.float64)
    y = torch.randn(1, 4, conv_length(40, 5, 3, 1, 1), generator=generator, dtype=torch.float64)
    lhs = (F.conv1d(x, weight, stride=3, padding=1) * y).sum()
    rhs = (x * F.conv_transpose1d(y, weight, stride=3, padding=1, output_padding=1)).sum()
    results = {"settings": compared, "max_diff": max_diff,
               "lengths_checked": lengths_check["checked"],
               "length_mismatches": lengths_check["mismatches"],
               "adjoint_diff": abs(lhs.item() - rhs.item())}
    print(f"ConvTranspose1d vs zero insertion + flipped kernel: max |diff| {max_diff:.1e} over "
          f"{compared} (channels, kernel, stride, padding, output_padding) settings")
    print(f"output-length formulas: {lengths_check['checked']} settings checked against "
          f"PyTorch, {len(lengths_check['mismatches'])} mismatches")
    print(f"<conv(x), y> - <x, convT(y)> = {results['adjoint_diff']:.1e}")

    # the figure: one 1-channel example with stride 3
    x = torch.tensor([[[1.0, -0.5, 0.8, 0.3]]])
    weight = torch.tensor([[[0.25, 0.5, 1.0, 0.6]]])  # asymmetric, so a missing flip would show
    stride = 3
    up = zero_insert(x, stride)[0, 0]
    torch_out = F.conv_transpose1d(x, weight, stride=stride)[0, 0]
    ours = upsample_by_filtering(x, weight, stride)[0, 0]
    unflipped = F.conv1d(F.pad(zero_insert(x, stride), (3, 3)), weight)[0, 0]
    plt = pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(7, 7), gridspec_kw={"hspace": 0.65})
    axes[0].stem(range(x.shape[-1]), x[0, 0])
    axes[0].set(title="input x (4 samples)", xlim=(-0.5, x.shape[-1] - 0.5), xticks=range(4))
    axes[1].stem(range(len(up)), up)
    axes[1].set(title=f"{stride - 1} zeros inserted between samples",
                xlim=(-0.5, len(torch_out) - 0.5))
    axes[2].plot(torch_out, color="tab:blue", linewidth=5, alpha=0.4,
                 label=f"ConvTranspose1d(stride {stride})")
    axes[2].plot(ours, "k.", markersize=9, label="zeros + conv1d with the flipped kernel")
    axes[2].plot(unflipped, "x", color="tab:red", label="zeros + conv1d, kernel not flipped")
    kernel_text = ", ".join(f"{v:g}" for v in weight[0, 0].tolist())
    axes[2].set(title=f"kernel [{kernel_text}]: {len(torch_out)} output samples",
                xlim=(-0.5, len(torch_out) - 0.5), xlabel="sample")
    axes[2].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=2)
    save_figure(fig, args.out_dir / "transposed_conv.png")
    return results


if __name__ == "__main__":
    main()
