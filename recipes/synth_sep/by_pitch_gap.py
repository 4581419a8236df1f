"""SI-SNRi of a synth_mix evaluation by the two talkers' mean-pitch gap.

    audionets evaluate sepformer-synth-2spk --data recipes/synth_sep/config.yaml \
        data.test.segment_seconds=null --no-sdr --out test.csv
    python recipes/synth_sep/by_pitch_gap.py test.csv

Reads the per-file CSV of ``audionets evaluate`` (its ids name the talkers, ``spk<id>``),
looks the talkers up in the test pool (:func:`audionets.data.speech.speaker_pool`, seed 0 as
in the recipe) and prints the mean SI-SNRi per band of |f0 difference| in semitones.
"""

from __future__ import annotations

import argparse
import csv
import math
import re

from audionets.data.speech import speaker_pool

BANDS = [(0, 1), (1, 2), (2, 4), (4, 8), (8, 48)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="per-file CSV written by audionets evaluate --out")
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0, help="the recipe's seed (default 0)")
    args = parser.parse_args()
    talkers = {s.speaker_id: s for s in speaker_pool(args.split, args.seed)}
    gaps: list[tuple[float, float]] = []
    with open(args.csv, newline="") as handle:
        for row in csv.DictReader(handle):
            a, b = (talkers[int(i)] for i in re.findall(r"spk(\d+)", row["id"])[:2])
            gaps.append((abs(12 * math.log2(a.f0_mean / b.f0_mean)), float(row["si_snri"])))
    print("f0 gap (semitones)  mixtures  mean SI-SNRi (dB)")
    for low, high in BANDS:
        values = [v for gap, v in gaps if low <= gap < high]
        if values:
            print(f"{low:>5} - {high:<10} {len(values):>9}  {sum(values) / len(values):>17.2f}")


if __name__ == "__main__":
    main()
