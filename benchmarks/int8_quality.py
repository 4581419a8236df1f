"""Int8 dynamic quantization of a trained separator: quality and speed vs. fp32.

Separates the first N mixtures of the synth_mix test split (talkers unseen in training) with
the model in fp32 and with ``quantize="int8"``, and prints the mean SI-SNRi of each, their
difference (target: within 0.3 dB) and the median time per second of audio (same process,
same inputs, alternating calls)::

    python benchmarks/int8_quality.py                       # the shipped sepformer-synth-2spk
    python benchmarks/int8_quality.py --model exp/synth_sep --num-mixtures 50
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from audionets import Separator
from audionets.cli.demo import test_mixture
from audionets.metrics import pairwise_neg_si_snr, pit, reorder, si_snr_improvement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sepformer-synth-2spk")
    parser.add_argument("--num-mixtures", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    separators = {"fp32": Separator.from_pretrained(args.model),
                  "int8": Separator.from_pretrained(args.model, quantize="int8")}
    scores: dict[str, list[float]] = {name: [] for name in separators}
    seconds_per_second: dict[str, list[float]] = {name: [] for name in separators}
    for index in range(args.num_mixtures):
        item = test_mixture(separators["fp32"], index)
        mix, sources = item["mix"], item["sources"]
        for name, separator in separators.items():
            start = time.perf_counter()
            estimate = separator.separate_batch(mix[None])[0].T  # [S, T]
            elapsed = time.perf_counter() - start
            seconds_per_second[name].append(elapsed / (mix.shape[-1] / separator.sample_rate))
            _, perm = pit(pairwise_neg_si_snr, estimate[None], sources[None])
            aligned = reorder(estimate[None], perm)[0]
            improvement = si_snr_improvement(aligned, sources, mix.expand_as(sources)).mean()
            scores[name].append(float(improvement))

    print(f"model {args.model}: {args.num_mixtures} synth_mix test mixtures, "
          f"{args.threads} threads")
    print(f"{'':6}{'SI-SNRi dB':>12}{'s per s audio':>16}")
    for name in separators:
        print(f"{name:6}{statistics.mean(scores[name]):12.2f}"
              f"{statistics.median(seconds_per_second[name]):16.4f}")
    gap = statistics.mean(scores["fp32"]) - statistics.mean(scores["int8"])
    speedup = (statistics.median(seconds_per_second["fp32"])
               / statistics.median(seconds_per_second["int8"]))
    print(f"int8 loses {gap:.3f} dB (target <= 0.3) and runs {speedup:.2f}x the fp32 speed")


if __name__ == "__main__":
    main()
