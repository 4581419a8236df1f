"""SepFormer inference: ours (PyTorch fp32 and dynamic int8; onnxruntime fp32 and int8) vs.
SpeechBrain's, same weights.

    python benchmarks/sepformer_inference.py                   # 4 s and 16 s, CPU, 2 threads
    python benchmarks/sepformer_inference.py --quick           # 1 s, 1 run: a smoke test
    python benchmarks/sepformer_inference.py --device cuda --precision bf16

Both models get the same random weights in the published WSJ0-2mix architecture: we build
our model, export it as a SpeechBrain folder (``save_sepformer_folder``), and SpeechBrain loads
that folder with its own ``SepformerSeparation.from_hparams`` while we load it with
``Separator.from_pretrained`` (on CPU: oneDNN pre-packed linear weights). Timed calls are the
two ``separate_batch`` methods, both under ``torch.inference_mode()`` (and ``torch.autocast``
for bf16), batch 1. The int8 variant (``quantize="int8"``) is CPU-only. The ONNX variants
(CPU, fp32 only) run the same weights exported once with ``audionets.export`` (dynamic
axes, as ``audionets export --format onnx`` writes them; ``onnx-int8``: onnxruntime's dynamic
quantization of that graph) through ``Separator.from_pretrained(onnx_folder)``, with
onnxruntime using ``--threads`` intra-op threads.

Every model runs in its own fresh subprocess (so its peak memory is its own: the process only
imports, loads the model and separates), after ``--warmup`` calls, ``--runs`` timed calls.
With ``--rounds R`` the subprocesses are started R times in turn, so a change in the
machine's load hits all models alike; the reported time is the median over all timed calls.
The outputs of the last round are compared: max |ours - SpeechBrain| (and |onnx - SpeechBrain|)
relative to the peak of SpeechBrain's output, and the SI-SNR of each int8 output against our
fp32 output.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from _common import (add_runtime_args, autocast, build_published_folder, describe, memory_label,
                     peak_memory_mib, run_rounds, setup_worker, si_snr_db, synchronize)

VARIANTS = ("speechbrain", "ours", "ours-int8", "onnx", "onnx-int8")


def load_variant(variant: str, folder: Path, device: torch.device):
    """Return a callable ``mix [1, T] -> sources [1, T, S]`` for ``variant`` on ``device``."""
    if variant == "speechbrain":
        from speechbrain.inference.separation import SepformerSeparation

        separator = SepformerSeparation.from_hparams(
            source=str(folder), savedir=str(folder / "sb_savedir"),
            run_opts={"device": str(device)})
        return separator.separate_batch
    from audionets import Separator

    # rescale=False: the model's own output, as SpeechBrain's, so that the outputs compare
    if variant.startswith("onnx"):
        return Separator.from_pretrained(folder / variant, rescale=False).separate_batch
    quantize = "int8" if variant == "ours-int8" else None
    return Separator.from_pretrained(folder, device=str(device), quantize=quantize,
                                     rescale=False).separate_batch


def export_onnx(folder: Path) -> None:
    """``folder/onnx`` and ``folder/onnx-int8``: the SpeechBrain folder's model exported."""
    from audionets import hub
    from audionets.export import export_model, quantize_folder

    model, meta = hub.load_model(folder)
    export_model(model, meta, folder / "onnx", "onnx")
    quantize_folder(folder / "onnx", folder / "onnx-int8")


def worker(args: argparse.Namespace) -> None:
    """One subprocess: load one variant, time it, save its output, print a JSON line."""
    device = setup_worker(args)
    separate = load_variant(args.worker, Path(args.folder), device)
    generator = torch.Generator().manual_seed(1)
    mix = (torch.randn(1, int(args.seconds * 8000), generator=generator) * 0.1).to(device)
    times = []
    with torch.inference_mode(), autocast(device, args.precision):
        for index in range(args.warmup + args.runs):
            synchronize(device)
            start = time.perf_counter()
            out = separate(mix)
            synchronize(device)
            if index >= args.warmup:
                times.append(time.perf_counter() - start)
    torch.save(out.float().cpu().contiguous(), args.output)
    print(json.dumps({"times": times, "peak_mib": peak_memory_mib(device)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[4.0, 16.0])
    parser.add_argument("--runs", type=int, default=3, help="timed calls per subprocess")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="subprocess rounds per variant")
    parser.add_argument("--seed", type=int, default=0)
    add_runtime_args(parser)
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime variants")
    parser.add_argument("--quick", action="store_true", help="1 s input, 1 run, 1 round")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.seconds = args.seconds[0]
        worker(args)
        return
    if args.quick:
        args.seconds, args.runs, args.rounds, args.warmup = [1.0], 1, 1, 1
    skip = set()
    if args.no_int8 or args.device == "cuda":
        skip |= {"ours-int8", "onnx-int8"}
    if args.no_onnx or args.device == "cuda" or args.precision != "fp32":
        skip |= {"onnx", "onnx-int8"}
    variants = [v for v in VARIANTS if v not in skip]
    print(f"{describe(args)}, batch 1, {args.rounds} rounds x ({args.warmup} warm-up + "
          f"{args.runs} timed) calls per model")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_published_folder(folder, args.seed)
        if "onnx" in variants:
            start = time.perf_counter()
            export_onnx(folder)
            print(f"ONNX export (once, dynamic axes, checked against PyTorch): "
                  f"{time.perf_counter() - start:.0f} s")
        for seconds in args.seconds:
            reports, median = run_rounds(__file__, variants, folder, seconds, args)
            reference = reports["speechbrain"]["output"]
            peak = reference.abs().max().item()
            print(f"\ninput {seconds:g} s")
            print(f"  {'model':12s} {'median s':>9s} {'s per s':>8s} {'vs SB':>6s} "
                  f"{memory_label(args):>13s}")
            for v in variants:
                print(f"  {v:12s} {median[v]:9.3f} {median[v] / seconds:8.3f} "
                      f"{median['speechbrain'] / median[v]:5.2f}x {reports[v]['peak_mib']:13.0f}")
            diff = (reports["ours"]["output"] - reference).abs().max().item()
            print(f"  ours vs SpeechBrain: max abs diff {diff:.2e} = {diff / peak:.2e} x peak "
                  f"({peak:.3f})")
            if "onnx" in reports:
                diff = (reports["onnx"]["output"] - reference).abs().max().item()
                print(f"  onnx vs SpeechBrain: max abs diff {diff:.2e} = {diff / peak:.2e} x "
                      "peak")
            for v in ("ours-int8", "onnx-int8"):
                if v in reports:
                    agreement = si_snr_db(reports[v]["output"], reports["ours"]["output"])
                    print(f"  {v} vs fp32 (ours): SI-SNR {agreement:.1f} dB")


if __name__ == "__main__":
    main()
