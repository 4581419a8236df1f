"""Activation functions on XOR: the loss curve of the same small network for each activation.

    python recipes/tutorials/activations_xor.py --out-dir outputs/tutorials

Every run starts from the same seed; only the hidden activation changes. Writes
``activations_xor.png``.
"""

from __future__ import annotations

import torch

from audionets.models.mlp import MLP
from common import (XOR_CORNERS, XOR_LABELS, accuracy, base_parser, parse, pyplot,
                    save_figure, train_full_batch, xor_points)

ACTIVATIONS = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu", "selu"]


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--activations", nargs="+", default=ACTIVATIONS)
    parser.add_argument("--hidden", type=int, default=4)
    args = parse(parser, argv)
    generator = torch.Generator().manual_seed(args.seed)
    x, y = xor_points(64 if args.quick else 400, 0.15, generator)
    steps = 200 if args.quick else 1000
    curves, results = {}, {}
    for name in args.activations:
        torch.manual_seed(args.seed)
        model = MLP(2, 2, width=args.hidden, depth=1, activation=name)
        curves[name] = train_full_batch(model, x, y, steps=steps, lr=0.02)
        results[name] = {"final_loss": curves[name][-1],
                         "corner_accuracy": accuracy(model, XOR_CORNERS, XOR_LABELS)}
        print(f"{name:>11}: loss {curves[name][-1]:.4f}, "
              f"corner accuracy {results[name]['corner_accuracy']:.2f}")

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, losses in curves.items():
        ax.plot(losses, label=name)
    ax.set(xlabel="step", ylabel="cross-entropy", yscale="log",
           title=f"XOR, 2-{args.hidden}-2 network, Adam lr 0.02")
    ax.legend(ncol=2, fontsize=8)
    save_figure(fig, args.out_dir / "activations_xor.png")
    return results


if __name__ == "__main__":
    main()
