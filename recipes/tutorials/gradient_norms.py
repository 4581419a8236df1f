"""Vanishing gradients: per-layer gradient norms of a deep plain vs residual MLP.

    python recipes/tutorials/gradient_norms.py --out-dir outputs/tutorials

Both networks have the same weights (``depth`` blocks of width ``width`` with a saturating
activation); the residual one adds ``x +`` around each block. One backward pass of the
cross-entropy on XOR points gives the gradient norm of every block's weight matrix. In the
plain network the norm shrinks by a roughly constant factor per layer going back towards the
input (sigmoid' <= 1/4); the identity paths keep it alive. Writes ``gradient_norms.png``.
"""

from __future__ import annotations

import torch

from audionets.models.mlp import ResidualMLP
from common import base_parser, layer_gradient_norms, parse, pyplot, save_figure, xor_points


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--activation", default="sigmoid", help="e.g. sigmoid or tanh")
    args = parse(parser, argv)
    generator = torch.Generator().manual_seed(args.seed)
    x, y = xor_points(64 if args.quick else 256, 0.15, generator)
    residual = ResidualMLP(2, 2, args.width, args.depth, args.activation, residual=True)
    plain = ResidualMLP(2, 2, args.width, args.depth, args.activation, residual=False)
    plain.load_state_dict(residual.state_dict())
    results = {"plain": layer_gradient_norms(plain, x, y),
               "residual": layer_gradient_norms(residual, x, y)}

    plt = pyplot()
    layers = torch.arange(1, args.depth + 1)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(layers - 0.2, results["plain"], width=0.4, label="plain")
    ax.bar(layers + 0.2, results["residual"], width=0.4, label="residual")
    ax.set(xlabel="layer (1 = next to the input)", ylabel="||dL/dW||", yscale="log",
           title=f"{args.depth}-layer {args.activation} MLP: gradient norm per layer")
    ax.legend()
    save_figure(fig, args.out_dir / "gradient_norms.png")
    print(f"layer 1: plain {results['plain'][0]:.2e}, residual {results['residual'][0]:.2e}; "
          f"layer {args.depth}: plain {results['plain'][-1]:.2e}, "
          f"residual {results['residual'][-1]:.2e}")
    return results


if __name__ == "__main__":
    main()
