"""Which CPU path should ``audionets separate`` take for a separator: PyTorch or onnxruntime,
fp32 or int8? Times ``Separator.separate_batch`` of one model on each backend, same weights.

    python benchmarks/separator_backends.py                                  # the shipped default
    python benchmarks/separator_backends.py --model sepformer-synth-2spk
    python benchmarks/separator_backends.py --recipe recipes/tts_mix/sudormrf_lite.yaml  # random weights
    python benchmarks/separator_backends.py --shifts 2   # separate --shifts 2 (two passes per call)

``--model`` is anything ``Separator.from_pretrained`` loads (a shipped name, a folder, a
checkpoint); ``--recipe`` builds the recipe's model with random weights instead (speed does not
depend on the weights; agreement is then measured on an untrained model). The model is saved
once as a folder and exported once to ONNX (``audionets.export``, dynamic axes) and quantized
(``quantize_folder``); each variant then runs in its own fresh subprocess (``--rounds``
interleaved rounds of ``--warmup`` + ``--runs`` calls, median reported) with ``--threads``
threads, ``rescale=False`` (the model's own output). Agreement: max |onnx - ours| relative to
the peak of ours, and each int8 output's SI-SNR against ours fp32.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from _common import (add_runtime_args, describe, memory_label, peak_memory_mib, run_rounds,
                     setup_worker, si_snr_db)

VARIANTS = ("ours", "ours-int8", "onnx", "onnx-int8")


def build_folder(folder: Path, model_source: str | None, recipe: str | None, seed: int) -> str:
    """Save the benchmarked model to ``folder/ours`` (plus ONNX exports); return its name."""
    from audionets import hub
    from audionets.export import export_model, quantize_folder

    if recipe:
        from audionets.serialization.yaml_files import parse_yaml

        config = parse_yaml(Path(recipe).read_text(), recipe)
        config = {key: config[key] for key in ("task", "sample_rate", "model")}
        torch.manual_seed(seed)
        model = hub.build_from_config(config, recipe).eval()
        meta = hub.meta_from_config(config, recipe)
        name = f"{config['model']['name']} from {recipe} (random weights)"
    else:
        model, meta = hub.load_model(model_source)
        name = model_source
    hub.save_pretrained(model, meta, folder / "ours")
    start = time.perf_counter()
    export_model(model, meta, folder / "onnx", "onnx")
    quantize_folder(folder / "onnx", folder / "onnx-int8")
    params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {params / 1e6:.2f} M parameters, {meta.sample_rate} Hz; ONNX export and "
          f"quantization {time.perf_counter() - start:.0f} s")
    return name


def worker(args: argparse.Namespace) -> None:
    """One subprocess: load one variant, time it, save its output, print a JSON line."""
    from audionets import Separator

    device = setup_worker(args)
    folder = Path(args.folder)
    if args.worker.startswith("onnx"):
        separator = Separator.from_pretrained(folder / args.worker, rescale=False,
                                              shifts=args.shifts)
    else:
        separator = Separator.from_pretrained(
            folder / "ours", device=str(device), rescale=False, shifts=args.shifts,
            quantize="int8" if args.worker == "ours-int8" else None)
    generator = torch.Generator().manual_seed(1)
    mix = torch.randn(1, int(args.seconds * separator.sample_rate), generator=generator) * 0.1
    times = []
    with torch.inference_mode():
        for index in range(args.warmup + args.runs):
            start = time.perf_counter()
            out = separator.separate_batch(mix)
            if index >= args.warmup:
                times.append(time.perf_counter() - start)
    torch.save(out.float().contiguous(), args.output)
    print(json.dumps({"times": times, "peak_mib": peak_memory_mib(device)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", default=None,
                        help="a shipped name, folder or checkpoint (default: the default model of "
                             "`audionets separate`)")
    source.add_argument("--recipe", help="build this recipe's model with random weights")
    parser.add_argument("--seconds", type=float, nargs="+", default=[4.0, 16.0])
    parser.add_argument("--runs", type=int, default=3, help="timed calls per subprocess")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="subprocess rounds per variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shifts", type=int, default=1,
                        help="passes averaged per call (Separator(shifts=N)); default 1")
    add_runtime_args(parser)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.seconds = args.seconds[0]
        worker(args)
        return
    if args.device != "cpu":
        parser.error("this benchmark compares CPU backends: --device cpu")
    if args.model is None and args.recipe is None:
        from audionets.inference.separator import DEFAULT_SEPARATOR

        args.model = DEFAULT_SEPARATOR
    print(f"{describe(args)}, batch 1, shifts {args.shifts}, {args.rounds} rounds x "
          f"({args.warmup} warm-up + {args.runs} timed) calls per variant")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_folder(folder, args.model, args.recipe, args.seed)
        for seconds in args.seconds:
            reports, median = run_rounds(__file__, VARIANTS, folder, seconds, args,
                                         ("--shifts", str(args.shifts)))
            reference = reports["ours"]["output"]
            peak = reference.abs().max().item()
            print(f"\ninput {seconds:g} s")
            print(f"  {'variant':10s} {'median s':>9s} {'s per s':>8s} {'vs ours':>8s} "
                  f"{memory_label(args):>13s}")
            for v in VARIANTS:
                print(f"  {v:10s} {median[v]:9.4f} {median[v] / seconds:8.4f} "
                      f"{median['ours'] / median[v]:7.2f}x {reports[v]['peak_mib']:13.0f}")
            diff = (reports["onnx"]["output"] - reference).abs().max().item()
            print(f"  onnx vs ours: max abs diff {diff:.2e} = {diff / peak:.2e} x peak")
            for v in ("ours-int8", "onnx-int8"):
                print(f"  {v} vs ours fp32: SI-SNR {si_snr_db(reports[v]['output'], reference):.1f}"
                      " dB")


if __name__ == "__main__":
    main()
