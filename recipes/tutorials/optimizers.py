"""Optimizers on the lecture's L(w) = 3 w1^2 + w2^2 and on a small audio task.

    python recipes/tutorials/optimizers.py --out-dir outputs/tutorials

Every optimizer is built the way a training config builds it (``optimizer: {name: ..., lr: ...}``
through :func:`audionets.training.config.optimizer_config` and
:func:`audionets.training.trainer.build_optimizer`): plain gradient descent at three learning rates
(slow at 0.02; at 0.3 it zig-zags across the steep w1 direction, whose curvature is 6; above
2 / 6 it diverges), momentum
(``m = lr * grad + mu * m``; a low-pass filter on the gradients), Nesterov momentum, Adagrad
(steps divided by the root of the sum of all squared gradients: they shrink for good),
RMSProp (a running mean of squared gradients instead) and Adam / AdamW (RMSProp with momentum
smoothing; AdamW decays the weights separately). Then the same optimizers train the same
audio classifier (``tf_cnn`` on six ``synth_events`` classes). Writes ``optimizers.png``
(trajectories on the contour plot, loss vs step, audio training loss per epoch).
"""

from __future__ import annotations

import torch

from audionets.training.config import optimizer_config
from audionets.training.trainer import build_optimizer
from common import (audio_classifier, audio_task, base_parser, parse, pyplot, save_figure,
                    train_audio)

START = (-2.5, 2.0)
#: label -> the config's ``optimizer`` section for L(w) = 3 w1^2 + w2^2
QUADRATIC = {
    "sgd lr 0.02": {"name": "sgd", "lr": 0.02, "momentum": 0.0},
    "sgd lr 0.3": {"name": "sgd", "lr": 0.3, "momentum": 0.0},
    "sgd lr 0.34": {"name": "sgd", "lr": 0.34, "momentum": 0.0},  # > 1/3: w1 diverges
    "momentum": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "nesterov": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
    "adagrad": {"name": "adagrad", "lr": 0.5},
    "rmsprop": {"name": "rmsprop", "lr": 0.05},
    "adam": {"name": "adam", "lr": 0.1},
    "adamw": {"name": "adamw", "lr": 0.1, "weight_decay": 0.1},
}
#: label -> the ``optimizer`` section for the audio classifier
AUDIO = {
    "sgd": {"name": "sgd", "lr": 0.05, "momentum": 0.0},
    "momentum": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "nesterov": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
    "adagrad": {"name": "adagrad", "lr": 0.05},
    "rmsprop": {"name": "rmsprop", "lr": 1e-3},
    "adam": {"name": "adam", "lr": 3e-3},
    "adamw": {"name": "adamw", "lr": 3e-3, "weight_decay": 1e-2},
}


def quadratic_loss(w: torch.Tensor) -> torch.Tensor:
    """The lecture's ``L(w) = 3 w1^2 + w2^2`` for ``w[..., 2]``."""
    return 3 * w[..., 0] ** 2 + w[..., 1] ** 2


def descend(section: dict, steps: int) -> torch.Tensor:
    """Run the optimizer of a config's ``optimizer`` ``section`` on L from :data:`START`;
    returns the trajectory ``[steps + 1, 2]`` (float64)."""
    w = torch.tensor(START, dtype=torch.float64, requires_grad=True)
    optimizer = build_optimizer(optimizer_config(section), [w])
    path = [w.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        quadratic_loss(w).backward()
        optimizer.step()
        path.append(w.detach().clone())
    return torch.stack(path)


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="steps on L(w)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of the audio task")
    parser.add_argument("--per-class", type=int, default=80, help="training clips per class")
    args = parse(parser, argv)
    if args.quick:
        args.epochs, args.per_class = 6, 30
    paths = {label: descend(section, args.steps) for label, section in QUADRATIC.items()}
    results = {"quadratic": {label: {"path": path, "loss": quadratic_loss(path).tolist()}
                             for label, path in paths.items()}, "audio": {}}
    for label, r in results["quadratic"].items():
        print(f"L(w) {label:>12}: loss after 10 steps {r['loss'][10]:.2e}, "
              f"after {args.steps} {r['loss'][-1]:.2e}")

    task = audio_task(args.per_class, 20, seed=args.seed)
    for label, section in AUDIO.items():
        torch.manual_seed(args.seed)
        model = audio_classifier(batch_norm=True)
        optimizer = build_optimizer(optimizer_config(section), model.parameters())
        run = train_audio(model, task, optimizer, args.epochs, batch_size=32,
                          generator=torch.Generator().manual_seed(args.seed))
        steps = len(run["loss"]) // args.epochs
        run["epoch_loss"] = [sum(run["loss"][e * steps:(e + 1) * steps]) / steps
                             for e in range(args.epochs)]
        results["audio"][label] = run
        print(f"audio {label:>9} (lr {section['lr']:g}): training loss "
              f"{run['epoch_loss'][0]:.3f} -> {run['epoch_loss'][-1]:.3f}, validation accuracy "
              f"{run['valid_accuracy'][-1]:.3f}", flush=True)

    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(13, 10.5), gridspec_kw={"wspace": 0.2, "hspace": 0.25})
    markers = dict(zip(QUADRATIC, "o.x^sDv*+"))
    grid = torch.linspace(-3, 3, 200)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    colors = dict(zip(list(QUADRATIC) + ["sgd"], plt.get_cmap("tab10").colors))
    colors["sgd"] = colors["sgd lr 0.02"]
    for ax, labels, title, nested in (
            (axes[0, 0], [k for k in QUADRATIC if k.startswith("sgd")] + ["momentum", "nesterov"],
             "gradient descent, momentum", False),
            (axes[0, 1], ["adagrad", "rmsprop", "adam", "adamw"],
             "per-parameter steps, along the diagonal", True)):
        ax.contour(gx, gy, quadratic_loss(torch.stack((gx, gy), -1)), levels=15, colors="0.8",
                   linewidths=0.7)
        for rank, label in enumerate(labels):
            shown = paths[label][:41]  # the first 40 steps: later ones sit at the minimum
            # the adaptive paths coincide: each drawn thinner than the one before stays visible
            size = 1 + 0.6 * (len(labels) - rank) if nested else 1.0
            ax.plot(shown[:, 0], shown[:, 1], linestyle="-", marker=markers[label],
                    color=colors[label], markersize=2 * size + 1, linewidth=size, alpha=0.7,
                    label=label, markerfacecolor="none")
        ax.plot(*START, "k*", markersize=12)
        ax.set(xlim=(-3, 3), ylim=(-2.2, 2.6), aspect="equal", xlabel="w1", ylabel="w2",
               title=f"{title}: the first 40 steps from ★")
        ax.legend(fontsize=8, loc="lower right")
    for label, path in paths.items():
        axes[1, 0].plot(quadratic_loss(path), color=colors[label], label=label)
    axes[1, 0].set(xlabel="step", ylabel="L(w)", yscale="log", ylim=(1e-12, 1e2),
                   title="L(w) = 3 w1² + w2² vs step")
    axes[1, 0].legend(fontsize=8, ncol=3, loc="lower left")
    for label, run in results["audio"].items():
        axes[1, 1].plot(range(1, args.epochs + 1), run["epoch_loss"], "o-", markersize=3,
                        color=colors[label], label=f"{label} (lr {AUDIO[label]['lr']:g}): "
                                                   f"{run['valid_accuracy'][-1]:.0%} valid")
    axes[1, 1].set(xlabel="epoch", ylabel="training loss (epoch mean)", yscale="log",
                   title="the same optimizers: tf_cnn on 6 synth_events classes")
    axes[1, 1].legend(fontsize=8)
    save_figure(fig, args.out_dir / "optimizers.png")
    return results


if __name__ == "__main__":
    main()
