"""Hand-wired XOR: OR and NAND hidden units and an AND output with a step activation, then trained.

    python recipes/tutorials/hand_xor.py --out-dir outputs/tutorials

The lecture's network, weights written out, with the step function ``u(z) = 1 if z > 0 else 0``:
``h1 = u(x1 + x2 - 0.5)`` (OR), ``h2 = u(-x1 - x2 + 1.5)`` (NAND), ``y = u(h1 + h2 - 1.5)``
(AND). The step has a zero gradient almost everywhere, so the network that learns the same
job uses a smooth activation (2 tanh hidden units, a sigmoid output); its hidden units are then
read through the step again (it may split the plane with other lines than OR and NAND).
Prints both truth tables and writes ``hand_xor.png`` (each
hidden unit's line and the output's decision regions, hand-wired and trained).
"""

from __future__ import annotations

import torch
from torch import nn

from common import XOR_CORNERS, base_parser, parse, pyplot, save_figure


def step(z: torch.Tensor) -> torch.Tensor:
    """The unit step ``u(z)``: 1 where ``z > 0``, else 0."""
    return (z > 0).float()


class _Step(nn.Module):
    """:func:`step` as a layer."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return step(z)


def hand_wired_xor() -> nn.Sequential:
    """``x[B, 2] -> h[B, 2] -> y[B, 1]`` with the lecture's weights: hidden units OR and NAND,
    output AND."""
    hidden, out = nn.Linear(2, 2), nn.Linear(2, 1)
    with torch.no_grad():
        hidden.weight.copy_(torch.tensor([[1.0, 1.0], [-1.0, -1.0]]))
        hidden.bias.copy_(torch.tensor([-0.5, 1.5]))
        out.weight.copy_(torch.tensor([[1.0, 1.0]]))
        out.bias.copy_(torch.tensor([-1.5]))
    return nn.Sequential(hidden, _Step(), out, _Step())


def train_xor_network(steps: int, lr: float, seed: int) -> nn.Sequential:
    """The same 2-2-1 shape with tanh hidden units and a sigmoid output, trained on the 4 corners
    (binary cross-entropy, full-batch Adam); returns it with a sigmoid at the end."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1))
    targets = torch.tensor([[0.0], [1.0], [1.0], [0.0]])  # XOR of XOR_CORNERS
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        loss = nn.functional.binary_cross_entropy_with_logits(net(XOR_CORNERS), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return nn.Sequential(*net, nn.Sigmoid())


def truth_table(net: nn.Sequential) -> list[tuple[int, int, int, int, int]]:
    """Rows ``(x1, x2, h1, h2, y)`` over the four corners: ``h = u(pre-activation)`` (the sign
    of a tanh unit), ``y = 1`` where the output is above 0.5."""
    with torch.no_grad():
        h = step(net[0](XOR_CORNERS)).int()
        y = (net(XOR_CORNERS) > 0.5).int()[:, 0]
    return [(int(a), int(b), int(h1), int(h2), int(out))
            for (a, b), (h1, h2), out in zip(XOR_CORNERS.int(), h, y)]


def _print_table(title: str, rows) -> None:
    print(title)
    print("  x1 x2 | h1 h2 | y")
    for x1, x2, h1, h2, y in rows:
        print(f"   {x1}  {x2} |  {h1}  {h2} | {y}")


def _plot_network(ax, net: nn.Sequential, title: str) -> None:
    grid = torch.linspace(-0.5, 1.5, 201)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    with torch.no_grad():
        y = net(torch.stack((gx.flatten(), gy.flatten()), 1)).view_as(gx)
    ax.contourf(gx, gy, (y > 0.5).float(), levels=[-0.5, 0.5, 1.5], colors=["#cfe0f3", "#f6d3c7"])
    weight, bias = net[0].weight.detach(), net[0].bias.detach()
    for i, (color, style) in enumerate((("tab:green", "--"), ("tab:purple", ":"))):
        w1, w2 = weight[i].tolist()  # the line w1 x1 + w2 x2 + b = 0 of hidden unit i
        x1 = grid if abs(w2) > 1e-6 else torch.full_like(grid, -bias[i].item() / w1)
        x2 = -(w1 * grid + bias[i]) / w2 if abs(w2) > 1e-6 else grid
        ax.plot(x1, x2, color=color, linestyle=style, linewidth=2,
                label=f"h{i + 1} switches on/off")
    labels = [0, 1, 1, 0]
    for (a, b), label in zip(XOR_CORNERS.tolist(), labels):
        ax.scatter(a, b, s=120, marker="o" if label else "s", edgecolors="k",
                   color="tab:red" if label else "tab:blue", zorder=3)
    ax.set(xlim=(-0.5, 1.5), ylim=(-0.5, 1.5), xlabel="x1", ylabel="x2", title=title,
           aspect="equal")
    ax.legend(loc="upper right", fontsize=7)


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps (Adam)")
    parser.add_argument("--lr", type=float, default=0.05)
    args = parse(parser, argv)
    wired = hand_wired_xor()
    trained = train_xor_network(500 if args.quick else args.steps, args.lr, args.seed)
    results = {"hand_wired": truth_table(wired), "trained": truth_table(trained)}
    _print_table("hand-wired (step activations):", results["hand_wired"])
    _print_table("trained (tanh hidden units read through the step, sigmoid output > 0.5):",
                 results["trained"])

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.3), gridspec_kw={"wspace": 0.3})
    _plot_network(axes[0], wired, "hand-wired: h1 = OR, h2 = NAND, y = AND")
    _plot_network(axes[1], trained, "trained 2-2-1 (tanh, sigmoid)")
    fig.suptitle("XOR: output 1 in the orange region (circles: XOR = 1, squares: XOR = 0)",
                 fontsize=10)
    save_figure(fig, args.out_dir / "hand_xor.png")
    return results


if __name__ == "__main__":
    main()
