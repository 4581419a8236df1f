"""SepFormer inference on CPU: ours (fp32 and dynamic int8) vs. SpeechBrain's, same weights.

    python benchmarks/sepformer_inference.py                   # 4 s and 16 s, 2 threads
    python benchmarks/sepformer_inference.py --quick           # 1 s, 1 run: a smoke test

Both models get the same random weights in the published WSJ0-2mix architecture: we build
our model, export it as a SpeechBrain folder (``save_sepformer_folder``), and SpeechBrain loads
that folder with its own ``SepformerSeparation.from_hparams`` while we load it with
``load_sepformer_folder``. Timed calls are ``SepformerSeparation.separate_batch`` and our
``model(mix)``, both under ``torch.inference_mode()``, batch 1, float32.

Every model runs in its own fresh subprocess (so its peak RSS is its own: the process only
imports, loads the model and separates), after ``--warmup`` calls, ``--runs`` timed calls.
With ``--rounds R`` the three subprocesses are started R times in turn, so a change in the
machine's load hits all models alike; the reported time is the median over all timed calls.
The outputs of the last round are compared: max |ours - SpeechBrain| relative to the peak of
SpeechBrain's output, and the SI-SNR of the int8 output against our fp32 output.
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

VARIANTS = ("speechbrain", "ours", "ours-int8")


def build_folder(folder: Path, seed: int) -> None:
    """Random published-architecture SepFormer, written as a SpeechBrain folder."""
    from audionets.interop.speechbrain import save_sepformer_folder
    from audionets.models.sepformer import SepFormer

    torch.manual_seed(seed)
    save_sepformer_folder(SepFormer().eval(), folder)


def load_variant(variant: str, folder: Path):
    """Return a callable ``mix [1, T] -> sources [1, T, S]`` for ``variant``."""
    if variant == "speechbrain":
        from speechbrain.inference.separation import SepformerSeparation

        separator = SepformerSeparation.from_hparams(
            source=str(folder), savedir=str(folder / "sb_savedir"), run_opts={"device": "cpu"}
        )
        return separator.separate_batch
    from audionets.interop.speechbrain import load_sepformer_folder
    from audionets.nn.quantization import quantize_dynamic_int8

    model, _ = load_sepformer_folder(folder)
    if variant == "ours-int8":
        model = quantize_dynamic_int8(model)
    return lambda mix: model(mix).transpose(1, 2)


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(args: argparse.Namespace) -> None:
    """One subprocess: load one variant, time it, save its output, print a JSON line."""
    torch.set_num_threads(args.threads)
    separate = load_variant(args.worker, Path(args.folder))
    loaded_rss = peak_rss_mib()
    generator = torch.Generator().manual_seed(1)
    mix = torch.randn(1, int(args.seconds * 8000), generator=generator) * 0.1
    times = []
    with torch.inference_mode():
        for index in range(args.warmup + args.runs):
            start = time.perf_counter()
            out = separate(mix)
            if index >= args.warmup:
                times.append(time.perf_counter() - start)
    torch.save(out.contiguous(), args.output)
    print(json.dumps({"times": times, "loaded_rss": loaded_rss, "peak_rss": peak_rss_mib()}))


def run_worker(variant: str, folder: Path, seconds: float, args: argparse.Namespace) -> dict:
    output = folder / f"out-{variant}-{seconds}.pt"
    command = [
        sys.executable, __file__, "--worker", variant, "--folder", str(folder),
        "--seconds-one", str(seconds), "--output", str(output), "--threads", str(args.threads),
        "--warmup", str(args.warmup), "--runs", str(args.runs),
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONWARNINGS="ignore")
    if args.omp_wait_policy != "default":
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{variant} worker failed:\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["output"] = torch.load(output, weights_only=True)
    return report


def si_snr_db(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    from audionets.metrics import si_snr

    return si_snr(estimate.transpose(-1, -2), reference.transpose(-1, -2)).mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[4.0, 16.0])
    parser.add_argument("--runs", type=int, default=3, help="timed calls per subprocess")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="subprocess rounds per variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--omp-wait-policy", choices=["PASSIVE", "ACTIVE", "default"], default="PASSIVE",
        help="OMP_WAIT_POLICY of the subprocesses; PASSIVE stops idle OpenMP threads from "
             "spinning, which on a shared, loaded machine makes every model ~2x faster and "
             "the timings repeatable (default: %(default)s)",
    )
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1 s input, 1 run, 1 round")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--seconds-one", dest="seconds_one", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.seconds = args.seconds_one
        worker(args)
        return
    if args.quick:
        args.seconds, args.runs, args.rounds, args.warmup = [1.0], 1, 1, 1
    variants = [v for v in VARIANTS if not (args.no_int8 and v == "ours-int8")]
    print(f"torch {torch.__version__}, {args.threads} threads, batch 1, fp32, "
          f"OMP_WAIT_POLICY={args.omp_wait_policy}, {args.rounds} rounds x ({args.warmup} warm-up + {args.runs} timed) calls per model")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_folder(folder, args.seed)
        for seconds in args.seconds:
            reports: dict[str, dict] = {}
            times: dict[str, list[float]] = {v: [] for v in variants}
            for _ in range(args.rounds):
                for variant in variants:
                    reports[variant] = run_worker(variant, folder, seconds, args)
                    times[variant] += reports[variant]["times"]
            median = {v: statistics.median(times[v]) for v in variants}
            reference = reports["speechbrain"]["output"]
            peak = reference.abs().max().item()
            print(f"\ninput {seconds:g} s")
            print(f"  {'model':12s} {'median s':>9s} {'s per s':>8s} {'vs SB':>6s} {'peak RSS MiB':>13s}")
            for v in variants:
                print(f"  {v:12s} {median[v]:9.3f} {median[v] / seconds:8.3f} "
                      f"{median['speechbrain'] / median[v]:5.2f}x {reports[v]['peak_rss']:13.0f}")
            diff = (reports["ours"]["output"] - reference).abs().max().item()
            print(f"  ours vs SpeechBrain: max abs diff {diff:.2e} = {diff / peak:.2e} x peak ({peak:.3f})")
            if "ours-int8" in reports:
                agreement = si_snr_db(reports["ours-int8"]["output"], reports["ours"]["output"])
                print(f"  int8 vs fp32 (ours): SI-SNR {agreement:.1f} dB")


if __name__ == "__main__":
    main()
