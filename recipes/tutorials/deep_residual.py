"""Depth with and without residuals: a 7-layer network of 3-unit layers on the circle problem.

    python recipes/tutorials/deep_residual.py --out-dir outputs/tutorials

The lecture's deep network: an input projection to 3 units, 6 layers of 3 hidden units and an
output layer (``ResidualMLP(2, 2, width=3, depth=6)``), trained on the circle problem of
``circles.py`` with and without the skips ``h + act(W h)``, for a sigmoid and a leaky-ReLU
activation, from the same initial weights. Without skips the sigmoid network's gradient
vanishes on the way to the first layers (as in ``gradient_norms.py``) and it learns no more
than a linear classifier; with skips it learns the circle. Writes ``deep_residual.png``
(decision regions, loss curves and the per-layer gradient norms at initialisation).
"""

from __future__ import annotations

import torch

from audionets.models.mlp import ResidualMLP
from common import (accuracy, base_parser, circle_points, layer_gradient_norms, parse,
                    plot_decision, pyplot, save_figure, train_full_batch)

KINDS = ("plain", "residual")


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--activations", nargs="+", default=["sigmoid", "leaky_relu"])
    parser.add_argument("--depth", type=int, default=6, help="hidden layers (blocks)")
    parser.add_argument("--width", type=int, default=3, help="units per hidden layer")
    parser.add_argument("--steps", type=int, default=2000, help="full-batch Adam steps")
    args = parse(parser, argv)
    generator = torch.Generator().manual_seed(args.seed)
    x, y = circle_points(300 if args.quick else 1000, generator)
    x_test, y_test = circle_points(2000, generator)
    steps = 500 if args.quick else args.steps
    results: dict[str, dict[str, dict]] = {}
    models, curves = {}, {}
    for activation in args.activations:
        torch.manual_seed(args.seed)
        residual = ResidualMLP(2, 2, args.width, args.depth, activation, residual=True)
        plain = ResidualMLP(2, 2, args.width, args.depth, activation, residual=False)
        plain.load_state_dict(residual.state_dict())  # same initial weights, only the skips differ
        results[activation] = {}
        for kind, model in zip(KINDS, (plain, residual)):
            norms = layer_gradient_norms(model, x, y)
            curves[activation, kind] = train_full_batch(model, x, y, steps=steps, lr=0.03)
            models[activation, kind] = model
            results[activation][kind] = {
                "final_loss": curves[activation, kind][-1],
                "test_accuracy": accuracy(model, x_test, y_test),
                "gradient_norms": norms,
            }
            print(f"{activation:>10} {kind:>8}: loss {curves[activation, kind][-1]:.3f}, "
                  f"held-out accuracy {results[activation][kind]['test_accuracy']:.3f}, "
                  f"||dL/dW|| at init: layer 1 {norms[0]:.1e}, layer {args.depth} "
                  f"{norms[-1]:.1e}", flush=True)

    plt = pyplot()
    rows = len(args.activations)
    fig, axes = plt.subplots(rows, 4, figsize=(15, 3.6 * rows), squeeze=False,
                             gridspec_kw={"wspace": 0.35, "hspace": 0.4})
    layers = torch.arange(1, args.depth + 1)
    for row, activation in zip(axes, args.activations):
        for ax, kind in zip(row[:2], KINDS):
            r = results[activation][kind]
            plot_decision(ax, models[activation, kind], x, y,
                          f"{activation}, {kind}: {r['test_accuracy']:.1%}")
        for kind in KINDS:
            row[2].plot(curves[activation, kind], label=kind)
            row[3].bar(layers + (0.2 if kind == "residual" else -0.2),
                       results[activation][kind]["gradient_norms"], width=0.4, label=kind)
        row[2].set(xlabel="step", ylabel="cross-entropy", yscale="log",
                   title=f"{activation}: training loss")
        row[3].set(xlabel="layer (1 = next to the input)", ylabel="||dL/dW|| at init",
                   yscale="log", title=f"{activation}: gradient norm per layer")
        row[2].legend(fontsize=8)
        row[3].legend(fontsize=8)
    fig.suptitle(f"{args.depth + 1}-layer network, {args.width} units per layer, "
                 "with and without skip connections", fontsize=11)
    save_figure(fig, args.out_dir / "deep_residual.png")
    return results


if __name__ == "__main__":
    main()
