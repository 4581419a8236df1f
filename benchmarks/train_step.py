"""One SepFormer training step (forward + backward + Adam): ours vs. SpeechBrain's.

    python benchmarks/train_step.py                 # batch 2 x 4 s, CPU, 2 threads
    python benchmarks/train_step.py --quick         # batch 2 x 0.5 s: a smoke test
    python benchmarks/train_step.py --device cuda --precision bf16

Both models have the published WSJ0-2mix architecture and the same random weights (SpeechBrain's
``Encoder``/``Dual_Path_Model``/``Decoder`` are instantiated from the hyperparams.yaml that
``save_sepformer_folder`` writes and load its .ckpt files; we load the same folder). The step
is SpeechBrain's recipe computation: encoder -> masknet -> masks * features -> decoder per
source, trimmed to the input length, negative SI-SNR against fixed random targets, backward,
``torch.optim.Adam(lr=1.5e-4)`` step. Dropout is 0, as in the published model.

With ``--precision bf16`` the forward and the loss run under ``torch.autocast(bfloat16)``.

Each variant runs in a fresh subprocess so its peak memory is its own: on CPU the process's
peak RSS (VmHWM), on CUDA ``torch.cuda.max_memory_allocated``, both reset once the model and
Adam state are built (gradients freed); ``step memory`` is the peak of the steps minus the
memory in use at that point: activations, gradients and workspace of a step.
``--rounds`` alternates the subprocesses.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import (add_runtime_args, autocast, build_published_folder, describe, memory_label,
                     peak_memory_mib, reset_peak_memory, run_worker, setup_worker, synchronize)

VARIANTS = ("speechbrain", "ours", "ours-checkpointing")


def neg_si_snr(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean negative SI-SNR (dB) of ``[B, S, T]`` tensors, in the fixed source order."""
    estimate = estimate - estimate.mean(-1, keepdim=True)
    target = target - target.mean(-1, keepdim=True)
    scale = (estimate * target).sum(-1, keepdim=True) / (target.square().sum(-1, keepdim=True) + 1e-8)
    projection = scale * target
    ratio = projection.square().sum(-1) / ((estimate - projection).square().sum(-1) + 1e-8)
    return -10 * torch.log10(ratio + 1e-8).mean()


def load_variant(variant: str, folder: Path) -> tuple[torch.nn.Module, object]:
    """Return ``(module holding all parameters, forward mix [B, T] -> [B, S, T])``."""
    if variant == "speechbrain":
        from hyperpyyaml import load_hyperpyyaml

        modules = load_hyperpyyaml((folder / "hyperparams.yaml").read_text())
        holder = torch.nn.ModuleDict(
            {"encoder": modules["Encoder"], "masknet": modules["MaskNet"], "decoder": modules["Decoder"]}
        )
        for name in holder:
            holder[name].load_state_dict(torch.load(folder / f"{name}.ckpt", weights_only=True))
        num_spks = modules["num_spks"]

        def forward(mix: torch.Tensor) -> torch.Tensor:
            features = holder["encoder"](mix)
            masks = holder["masknet"](features)
            sep = torch.stack([features] * num_spks) * masks
            est = torch.stack([holder["decoder"](sep[i]) for i in range(num_spks)], dim=1)
            length = mix.shape[1]
            return torch.nn.functional.pad(est, (0, max(0, length - est.shape[-1])))[..., :length]

        return holder, forward
    from audionets.interop.speechbrain import load_sepformer_folder

    model, _ = load_sepformer_folder(folder)
    model.masker.checkpointing = variant == "ours-checkpointing"
    return model, model


def worker(args: argparse.Namespace) -> None:
    device = setup_worker(args)
    torch.manual_seed(0)
    holder, forward = load_variant(args.worker, Path(args.folder))
    holder.to(device).train()
    optimizer = torch.optim.Adam(holder.parameters(), lr=1.5e-4)
    generator = torch.Generator().manual_seed(1)
    length = int(args.seconds * 8000)
    sources = (torch.randn(args.batch, 2, length, generator=generator) * 0.1).to(device)
    mix = sources.sum(1)
    # Adam state exists after the first step; count it in the baseline with a zero-lr step
    for group in optimizer.param_groups:
        group["lr"] = 0.0
    for param in holder.parameters():
        param.grad = torch.zeros_like(param)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    for group in optimizer.param_groups:
        group["lr"] = 1.5e-4
    built = reset_peak_memory(device)  # model + Adam state, no gradients, peak reset here
    times, losses = [], []
    for index in range(args.warmup + args.runs):
        synchronize(device)
        start = time.perf_counter()
        with autocast(device, args.precision):
            loss = neg_si_snr(forward(mix).float(), sources)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronize(device)
        if index >= args.warmup:
            times.append(time.perf_counter() - start)
        losses.append(loss.item())
    print(json.dumps({"times": times, "losses": losses, "built_mib": built,
                      "peak_mib": peak_memory_mib(device)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="timed steps per subprocess")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    add_runtime_args(parser)
    parser.add_argument("--quick", action="store_true", help="0.5 s inputs, 1 step")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS[1:], default=list(VARIANTS[1:]),
                        help="our variants to time against SpeechBrain (default: all)")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.seconds, args.runs, args.rounds = 0.5, 1, 1
    print(f"{describe(args)}, batch {args.batch} x {args.seconds:g} s, {args.rounds} rounds x "
          f"({args.warmup} warm-up + {args.runs} timed) steps per model")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_published_folder(folder, args.seed)
        variants = ["speechbrain", *args.variants]
        reports: dict[str, list[dict]] = {v: [] for v in variants}
        worker_argv = ["--folder", str(folder), "--seconds", str(args.seconds), "--batch",
                       str(args.batch), "--warmup", str(args.warmup), "--runs", str(args.runs)]
        for _ in range(args.rounds):
            for variant in variants:
                reports[variant].append(run_worker(__file__, variant, worker_argv, args))
    median = {v: statistics.median(t for r in reports[v] for t in r["times"]) for v in variants}
    peak = {v: max(r["peak_mib"] for r in reports[v]) for v in variants}
    step = {v: max(r["peak_mib"] - r["built_mib"] for r in reports[v]) for v in variants}
    print(f"  {'model':20s} {'median s':>9s} {'speed vs SB':>11s} {memory_label(args):>13s} "
          f"{'step memory MiB':>16s} {'vs SB':>6s}  first losses")
    for v in variants:
        losses = ", ".join(f"{x:.3f}" for x in reports[v][0]["losses"][:3])
        print(f"  {v:20s} {median[v]:9.3f} {median['speechbrain'] / median[v]:10.2f}x {peak[v]:13.0f} "
              f"{step[v]:16.0f} {step[v] / step['speechbrain']:5.2f}x  {losses}")


if __name__ == "__main__":
    main()
