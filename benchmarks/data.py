"""Speed of on-the-fly synthetic data generation on one CPU thread.

Prints, for each configuration, how many seconds of audio one thread generates per second of
wall time and per second of CPU time (x real time). Training the shipped separator generates
``synth_mix`` examples on the fly, so this must stay well above the rate at which the model
consumes them (target: >= 50x).

    python benchmarks/data.py [--examples 40] [--segment-seconds 4.0]
"""

from __future__ import annotations

import argparse
import time

import torch

import audionets.data  # noqa: F401  (registers the datasets)
from audionets.registry import DATASETS


def realtime_factors(name: str, examples: int, **kwargs) -> tuple[float, float]:
    """Seconds of (mixture) audio generated per second of wall time and of CPU time.

    The CPU-time figure is what one dedicated core achieves; it is the one to trust on a busy
    machine, where the wall-clock figure also counts time spent waiting for a core.
    """
    dataset = DATASETS.build(name, split="train", num_examples=examples, **kwargs)
    dataset[0]  # warm-up (speaker pool, FFT plans)
    wall, cpu = time.perf_counter(), time.process_time()
    samples = 0
    for index in range(examples):
        item = dataset[index]
        samples += item["mix" if "mix" in item else "wav"].shape[-1]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    seconds = samples / dataset.sample_rate
    return seconds / wall, seconds / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=40)
    parser.add_argument("--segment-seconds", type=float, default=4.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seg = args.segment_seconds
    configs = [
        ("synth_mix", "2 speakers, 8 kHz, clean", dict(num_speakers=2, sample_rate=8000)),
        ("synth_mix", "3 speakers, 8 kHz, clean", dict(num_speakers=3, sample_rate=8000)),
        ("synth_mix", "2 speakers, 8 kHz, noise 0-10 dB (white/pink/babble)",
         dict(num_speakers=2, sample_rate=8000, noise_snr_db=[0, 10])),
        ("synth_mix", "2 speakers, 16 kHz, clean", dict(num_speakers=2, sample_rate=16000)),
        ("synth_events", "16 kHz, 1 s clips", dict(sample_rate=16000, segment_seconds=1.0)),
    ]
    print(f"on-the-fly generation, 1 thread, {args.examples} examples each "
          f"({seg:g} s mixtures):")
    for name, label, kwargs in configs:
        kwargs.setdefault("segment_seconds", seg)
        wall, cpu = realtime_factors(name, args.examples, **kwargs)
        print(f"  {name:13s} {label:52s} {wall:7.1f}x real time (wall), {cpu:7.1f}x (CPU time)")


if __name__ == "__main__":
    main()
