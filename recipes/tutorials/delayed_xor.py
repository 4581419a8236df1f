"""Delayed XOR: y_t = XOR(x_t, x_{t-tau}) needs memory of length tau.

    python recipes/tutorials/delayed_xor.py --out-dir outputs/tutorials

A causal Conv1d with receptive field R sees x_{t-R+1} .. x_t: it solves the task for
tau < R and is at chance (50 %) for tau >= R, whatever it is trained on. Recurrent networks
(the vanilla RNN, MGU, GRU, LSTM) carry a state and can learn any delay they are trained on,
the vanilla RNN only for short delays (its gradient vanishes over long ones). Writes
``delayed_xor.png`` (held-out accuracy vs tau, one line per model).
"""

from __future__ import annotations

import torch

from common import (ConvTagger, RecurrentTagger, base_parser, parse, pyplot, save_figure,
                    train_tagger)


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--taus", type=int, nargs="+", default=[1, 2, 4, 6, 8, 12])
    parser.add_argument("--receptive-field", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["conv", "rnn", "mgu", "gru", "lstm"])
    parser.add_argument("--steps", type=int, default=600, help="training steps per model and tau")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-2)
    args = parse(parser, argv)
    if args.quick:
        args.taus, args.models, args.steps, args.hidden = [2, 6], ["conv", "gru"], 250, 16
        args.receptive_field = 4
    length = max(args.taus) + 24
    results: dict[str, dict[int, float]] = {}
    for name in args.models:
        results[name] = {}
        for tau in args.taus:
            torch.manual_seed(args.seed)
            generator = torch.Generator().manual_seed(args.seed + tau)
            model = (ConvTagger(args.receptive_field, args.hidden) if name == "conv"
                     else RecurrentTagger(name, args.hidden))
            results[name][tau] = train_tagger(model, tau, length, args.steps, batch=32,
                                              lr=args.lr, generator=generator)
            print(f"{name:>5} tau={tau:>2}: accuracy {results[name][tau]:.3f}", flush=True)

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    markers = dict(zip(("rnn", "mgu", "gru", "lstm"), "osD^"))
    for name, accuracies in results.items():
        taus, values = list(accuracies), list(accuracies.values())
        if name == "conv":  # a wide band under the others: visible where they coincide
            ax.plot(taus, values, color="gray", linewidth=7, alpha=0.35, solid_capstyle="round",
                    label=f"conv (R = {args.receptive_field})", zorder=1)
        else:
            ax.plot(taus, values, marker=markers.get(name, "o"), markerfacecolor="none",
                    linewidth=1.2, label=name.upper(), zorder=2)
    ax.axvline(args.receptive_field - 0.5, color="gray", linestyle=":")
    ax.set(xlabel="delay tau", ylabel="held-out accuracy", ylim=(0.4, 1.02),
           title="Delayed XOR: y_t = x_t XOR x_(t - tau)")
    ax.legend()
    save_figure(fig, args.out_dir / "delayed_xor.png")
    return results


if __name__ == "__main__":
    main()
