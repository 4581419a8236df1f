"""Batch norm: the same audio classifier trained with and without batch norm, at several rates.

    python recipes/tutorials/batch_norm.py --out-dir outputs/tutorials

``BN(x) = (x - E[x]) / sqrt(var[x] + eps) * gamma + beta`` after every convolution of the
package's time-frequency CNN (``tf_cnn``, ``batch_norm=True``) or not (``batch_norm=False``;
everything else equal: seed, data, order of the batches). Six sound-event classes of
``synth_events`` (8 kHz, 0.5 s), SGD with momentum 0.9 (``optimizer: {name: sgd}``) at each
learning rate. Writes ``batch_norm.png`` (training loss
per epoch and validation accuracy, one column per learning rate).
"""

from __future__ import annotations

import torch

from audionets.training.config import optimizer_config
from audionets.training.trainer import build_optimizer
from common import (audio_classifier, audio_task, base_parser, parse, pyplot, save_figure,
                    train_audio)


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.1, 0.5])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--per-class", type=int, default=80, help="training clips per class")
    args = parse(parser, argv)
    if args.quick:
        args.lrs, args.epochs, args.per_class = [0.01, 0.1], 8, 40
    task = audio_task(args.per_class, 20, seed=args.seed)
    results: dict[float, dict[str, dict]] = {}
    for lr in args.lrs:
        results[lr] = {}
        for batch_norm in (False, True):
            torch.manual_seed(args.seed)
            model = audio_classifier(batch_norm)
            optimizer = build_optimizer(optimizer_config({"name": "sgd", "lr": lr}),
                                        model.parameters())
            run = train_audio(model, task, optimizer, args.epochs, batch_size=32,
                              generator=torch.Generator().manual_seed(args.seed))
            steps = len(run["loss"]) // args.epochs
            run["epoch_loss"] = [sum(run["loss"][e * steps:(e + 1) * steps]) / steps
                                 for e in range(args.epochs)]
            name = "with BN" if batch_norm else "without BN"
            results[lr][name] = run
            print(f"lr {lr:g} {name:>10}: last-epoch training loss {run['epoch_loss'][-1]:.3f}, "
                  f"validation accuracy {run['valid_accuracy'][-1]:.3f}", flush=True)

    plt = pyplot()
    fig, axes = plt.subplots(2, len(args.lrs), figsize=(4.2 * len(args.lrs), 6.5), squeeze=False,
                             sharey="row", gridspec_kw={"hspace": 0.35})
    epochs = range(1, args.epochs + 1)
    for column, lr in enumerate(args.lrs):
        for name, run in results[lr].items():
            style = {"color": "tab:green" if name == "with BN" else "tab:gray", "marker": "o",
                     "markersize": 3}
            axes[0, column].plot(epochs, run["epoch_loss"], label=name, **style)
            axes[1, column].plot(epochs, run["valid_accuracy"], label=name, **style)
        axes[0, column].set(title=f"SGD lr {lr:g}", yscale="log", xlabel="epoch", ylim=(1e-2, 10))
        for row, (name, run) in enumerate(results[lr].items()):
            if not all(0 <= loss < 10 for loss in run["epoch_loss"]):  # NaN or huge
                axes[0, column].text(0.05, 0.92 - 0.08 * row, f"{name}: diverged",
                                     transform=axes[0, column].transAxes, color="tab:red")
        axes[1, column].set(xlabel="epoch", ylim=(0, 1))
        for ax in axes[:, column]:
            ax.xaxis.get_major_locator().set_params(integer=True)
        axes[0, column].legend(fontsize=8, loc="lower left")
    axes[0, 0].set_ylabel("training loss (epoch mean)")
    axes[1, 0].set_ylabel(f"validation accuracy ({len(task['valid_label'])} clips)")
    fig.suptitle("tf_cnn on 6 synth_events classes, with and without batch norm", fontsize=11)
    save_figure(fig, args.out_dir / "batch_norm.png")
    return results


if __name__ == "__main__":
    main()
