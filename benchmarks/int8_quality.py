"""Int8 dynamic quantization of a trained separator: quality and speed vs. fp32.

Separates the first N mixtures of the synth_mix test split (talkers unseen in training) with
the model in fp32 and with ``quantize="int8"``, and prints the mean SI-SNRi of each, their
difference (target: within 0.3 dB) and the median time per second of audio (same process,
same inputs, alternating calls). ``--onnx`` adds the model exported to ONNX (float32, and int8
with ``audionets.export.quantize_folder``) run by onnxruntime, and the SI-SNR of each int8
output against its float32 one (the export target: >= 25 dB)::

    python benchmarks/int8_quality.py                       # the shipped sepformer-synth-2spk
    python benchmarks/int8_quality.py --model exp/synth_sep --num-mixtures 50
    python benchmarks/int8_quality.py --onnx
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from audionets import Separator
from audionets.cli.demo import test_mixture
from audionets.metrics import pairwise_neg_si_snr, pit, reorder, si_snr, si_snr_improvement


def exported(model: str, folder: Path) -> dict[str, Separator]:
    """``model`` exported to ONNX in ``folder``: float32 and int8 separators."""
    from audionets import hub
    from audionets.export import export_model, quantize_folder

    export_model(*hub.load_model(model), folder / "fp32", "onnx")
    quantize_folder(folder / "fp32", folder / "int8")
    return {"onnx-fp32": Separator.from_pretrained(folder / "fp32"),
            "onnx-int8": Separator.from_pretrained(folder / "int8")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sepformer-synth-2spk")
    parser.add_argument("--num-mixtures", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--onnx", action="store_true",
                        help="also the ONNX export, float32 and int8, run by onnxruntime")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    separators = {"fp32": Separator.from_pretrained(args.model),
                  "int8": Separator.from_pretrained(args.model, quantize="int8")}
    scratch = tempfile.TemporaryDirectory()
    if args.onnx:
        separators.update(exported(args.model, Path(scratch.name)))
    scores: dict[str, list[float]] = {name: [] for name in separators}
    agreement: dict[str, list[float]] = {"int8": [], "onnx-int8": []}
    seconds_per_second: dict[str, list[float]] = {name: [] for name in separators}
    for index in range(args.num_mixtures):
        item = test_mixture(separators["fp32"], index)
        mix, sources = item["mix"], item["sources"]
        estimates = {}
        for name, separator in separators.items():
            start = time.perf_counter()
            estimate = estimates[name] = separator.separate_batch(mix[None])[0].T  # [S, T]
            elapsed = time.perf_counter() - start
            seconds_per_second[name].append(elapsed / (mix.shape[-1] / separator.sample_rate))
            _, perm = pit(pairwise_neg_si_snr, estimate[None], sources[None])
            aligned = reorder(estimate[None], perm)[0]
            improvement = si_snr_improvement(aligned, sources, mix.expand_as(sources)).mean()
            scores[name].append(float(improvement))
        for name in agreement:
            if name in estimates:  # int8 against the same runtime's float32
                reference = estimates["onnx-fp32" if name == "onnx-int8" else "fp32"]
                agreement[name].append(float(si_snr(estimates[name], reference).min()))

    print(f"model {args.model}: {args.num_mixtures} synth_mix test mixtures, "
          f"{args.threads} threads")
    print(f"{'':10}{'SI-SNRi dB':>12}{'s per s audio':>16}{'int8 vs fp32: min SI-SNR dB':>30}")
    for name in separators:
        against = f"{min(agreement[name]):30.1f}" if agreement.get(name) else ""
        print(f"{name:10}{statistics.mean(scores[name]):12.2f}"
              f"{statistics.median(seconds_per_second[name]):16.4f}{against}")
    gap = statistics.mean(scores["fp32"]) - statistics.mean(scores["int8"])
    speedup = (statistics.median(seconds_per_second["fp32"])
               / statistics.median(seconds_per_second["int8"]))
    print(f"int8 loses {gap:.3f} dB (target <= 0.3) and runs {speedup:.2f}x the fp32 speed")
    scratch.cleanup()


if __name__ == "__main__":
    main()
