"""XOR with a two-layer network: decision boundary and loss curve.

    python recipes/tutorials/xor.py --out-dir outputs/tutorials

A linear model cannot separate XOR; one hidden layer of a few tanh units can. Writes
``xor_boundary.png`` (predicted probability of class 1 over the plane, with the training
points) and ``xor_loss.png``.
"""

from __future__ import annotations

import torch

from audionets.models.mlp import MLP
from common import (XOR_CORNERS, XOR_LABELS, accuracy, base_parser, parse, pyplot,
                    save_figure, train_full_batch, xor_points)


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=4, help="hidden units")
    parser.add_argument("--activation", default="tanh")
    args = parse(parser, argv)
    generator = torch.Generator().manual_seed(args.seed)
    x, y = xor_points(64 if args.quick else 400, 0.15, generator)
    model = MLP(2, 2, width=args.hidden, depth=1, activation=args.activation)
    losses = train_full_batch(model, x, y, steps=300 if args.quick else 1500, lr=0.05)
    results = {
        "final_loss": losses[-1],
        "corner_accuracy": accuracy(model, XOR_CORNERS, XOR_LABELS),
        "train_accuracy": accuracy(model, x, y),
    }

    plt = pyplot()
    grid = torch.linspace(-0.6, 1.6, 120)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    with torch.no_grad():
        prob = model(torch.stack((gx.flatten(), gy.flatten()), 1)).softmax(1)[:, 1]
    fig, ax = plt.subplots(figsize=(4.5, 4))
    image = ax.contourf(gx, gy, prob.view_as(gx), levels=20, cmap="RdBu_r", vmin=0, vmax=1)
    ax.contour(gx, gy, prob.view_as(gx), levels=[0.5], colors="k")
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu_r", edgecolors="k", s=14)
    fig.colorbar(image, ax=ax, label="P(y = 1)")
    ax.set(title=f"XOR, 2-{args.hidden}-2 {args.activation} network", xlabel="x1", ylabel="x2")
    save_figure(fig, args.out_dir / "xor_boundary.png")

    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.plot(losses)
    ax.set(xlabel="step", ylabel="cross-entropy", yscale="log", title="XOR training loss")
    save_figure(fig, args.out_dir / "xor_loss.png")
    print(", ".join(f"{k} {v:.3f}" for k, v in results.items()))
    return results


if __name__ == "__main__":
    main()
