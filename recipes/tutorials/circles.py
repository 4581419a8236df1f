"""Hidden units and decision boundaries: classifying a circle with 2, 3 and 10 hidden units.

    python recipes/tutorials/circles.py --out-dir outputs/tutorials

Points in a square, class 1 inside a circle. Each hidden unit of a one-hidden-layer network is
a linear boundary (the dashed line where its pre-activation is 0); the output layer combines
them. With ReLU units, two can only cut out a band, three a hexagon (each line bends the
output once on each side), ten a polygon close to the circle.
Writes ``circles.png`` (decision regions side by side, each hidden unit's line drawn) and
prints the accuracy of each network on held-out points.
"""

from __future__ import annotations

import torch

from audionets.models.mlp import MLP
from common import (CIRCLE_RADIUS, accuracy, base_parser, circle_points, parse, plot_decision,
                    pyplot, save_figure, train_full_batch)


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[2, 3, 10])
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--steps", type=int, default=3000, help="full-batch Adam steps")
    args = parse(parser, argv)
    generator = torch.Generator().manual_seed(args.seed)
    x, y = circle_points(300 if args.quick else 1000, generator)
    x_test, y_test = circle_points(2000, generator)
    steps = 800 if args.quick else args.steps
    results, models = {}, {}
    for hidden in args.hidden:
        torch.manual_seed(args.seed)
        models[hidden] = MLP(2, 2, width=hidden, depth=1, activation=args.activation)
        losses = train_full_batch(models[hidden], x, y, steps=steps, lr=0.03)
        results[hidden] = {"final_loss": losses[-1],
                           "test_accuracy": accuracy(models[hidden], x_test, y_test)}
        print(f"{hidden:>3} hidden units: train loss {losses[-1]:.3f}, "
              f"held-out accuracy {results[hidden]['test_accuracy']:.3f}", flush=True)

    plt = pyplot()
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.8))
    axes = axes if len(models) > 1 else [axes]
    line = torch.linspace(-1.6, 1.6, 2)
    for ax, (hidden, model) in zip(axes, models.items()):
        plot_decision(ax, model, x, y, f"{hidden} hidden units: "
                                       f"{results[hidden]['test_accuracy']:.1%} held out")
        weight, bias = model.hidden[0].weight.detach(), model.hidden[0].bias.detach()
        for (w1, w2), b in zip(weight.tolist(), bias.tolist()):  # w1 x1 + w2 x2 + b = 0
            if abs(w2) > abs(w1):
                ax.plot(line, -(w1 * line + b) / w2, "--", color="lime", linewidth=1.2)
            else:
                ax.plot(-(w2 * line + b) / w1, line, "--", color="lime", linewidth=1.2)
        ax.add_patch(plt.Circle((0, 0), CIRCLE_RADIUS, fill=False, color="gold", linewidth=1.5))
    fig.suptitle("black: the network's boundary; green dashes: one line per hidden unit "
                 "(where its pre-activation is 0); gold: the true circle", fontsize=9)
    save_figure(fig, args.out_dir / "circles.png")
    return results


if __name__ == "__main__":
    main()
