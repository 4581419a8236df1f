"""One SepFormer training step on CPU (forward + backward + Adam): ours vs. SpeechBrain's.

    python benchmarks/train_step.py                 # batch 2 x 4 s, 2 threads
    python benchmarks/train_step.py --quick         # batch 2 x 0.5 s: a smoke test

Both models have the published WSJ0-2mix architecture and the same random weights (SpeechBrain's
``Encoder``/``Dual_Path_Model``/``Decoder`` are instantiated from the hyperparams.yaml that
``save_sepformer_folder`` writes and load its .ckpt files; we load the same folder). The step
is SpeechBrain's recipe computation: encoder -> masknet -> masks * features -> decoder per
source, trimmed to the input length, negative SI-SNR against fixed random targets, backward,
``torch.optim.Adam(lr=1.5e-4)`` step. Dropout is 0, as in the published model.

Each variant runs in a fresh subprocess so its peak RSS is its own; ``peak RSS`` is the
process maximum, ``step memory`` is that peak minus the RSS after the model and Adam state
were built (activations and gradients of the step). ``--rounds`` alternates the subprocesses.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

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


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    holder, forward = load_variant(args.worker, Path(args.folder))
    holder.train()
    optimizer = torch.optim.Adam(holder.parameters(), lr=1.5e-4)
    generator = torch.Generator().manual_seed(1)
    length = int(args.seconds * 8000)
    sources = torch.randn(args.batch, 2, length, generator=generator) * 0.1
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
    built_rss = peak_rss_mib()
    times, losses = [], []
    for index in range(args.warmup + args.runs):
        start = time.perf_counter()
        loss = neg_si_snr(forward(mix), sources)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if index >= args.warmup:
            times.append(time.perf_counter() - start)
        losses.append(loss.item())
    print(json.dumps({"times": times, "losses": losses, "built_rss": built_rss, "peak_rss": peak_rss_mib()}))


def run_worker(variant: str, folder: Path, args: argparse.Namespace) -> dict:
    command = [
        sys.executable, __file__, "--worker", variant, "--folder", str(folder),
        "--seconds", str(args.seconds), "--batch", str(args.batch), "--threads", str(args.threads),
        "--warmup", str(args.warmup), "--runs", str(args.runs),
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONWARNINGS="ignore")
    if args.omp_wait_policy != "default":
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{variant} worker failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="timed steps per subprocess")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--omp-wait-policy", choices=["PASSIVE", "ACTIVE", "default"], default="PASSIVE",
        help="OMP_WAIT_POLICY of the subprocesses; PASSIVE stops idle OpenMP threads from "
             "spinning, which on a shared, loaded machine makes every model ~2x faster and "
             "the timings repeatable (default: %(default)s)",
    )
    parser.add_argument("--quick", action="store_true", help="0.5 s inputs, 1 step")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.seconds, args.runs, args.rounds = 0.5, 1, 1
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch} x {args.seconds:g} s, "
          f"fp32, OMP_WAIT_POLICY={args.omp_wait_policy}, {args.rounds} rounds x ({args.warmup} warm-up + {args.runs} timed) steps per model")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        from audionets.interop.speechbrain import save_sepformer_folder
        from audionets.models.sepformer import SepFormer

        torch.manual_seed(args.seed)
        save_sepformer_folder(SepFormer(), folder)
        reports: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        for _ in range(args.rounds):
            for variant in VARIANTS:
                reports[variant].append(run_worker(variant, folder, args))
    median = {v: statistics.median(t for r in reports[v] for t in r["times"]) for v in VARIANTS}
    peak = {v: max(r["peak_rss"] for r in reports[v]) for v in VARIANTS}
    step = {v: max(r["peak_rss"] - r["built_rss"] for r in reports[v]) for v in VARIANTS}
    print(f"  {'model':20s} {'median s':>9s} {'speed vs SB':>11s} {'peak RSS MiB':>13s} "
          f"{'step memory MiB':>16s} {'vs SB':>6s}  first losses")
    for v in VARIANTS:
        losses = ", ".join(f"{x:.3f}" for x in reports[v][0]["losses"][:3])
        print(f"  {v:20s} {median[v]:9.3f} {median['speechbrain'] / median[v]:10.2f}x {peak[v]:13.0f} "
              f"{step[v]:16.0f} {step[v] / step['speechbrain']:5.2f}x  {losses}")


if __name__ == "__main__":
    main()
