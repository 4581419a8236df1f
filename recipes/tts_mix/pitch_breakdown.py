"""SI-SNRi of a separation evaluation by how close the two talkers' pitches are.

``audionets evaluate`` scores every mixture of a split (``--out rows.csv``: ``id`` =
the pool utterances joined by ``_``, ``si_snri``, ...). This script takes each utterance's
median F0 from the pool's manifest (``f0_hz``, :func:`audionets.data.speech_pool.median_f0`)
and prints the metric per band of F0 distance between the two talkers, in semitones: the
table of the ``sudormrf-tts-2spk`` card::

    audionets evaluate sudormrf-tts-2spk --data recipes/tts_mix/config.yaml \\
        data.root=~/audionets-runs/speech-pool-8k --no-sdr --out rows.csv
    python recipes/tts_mix/pitch_breakdown.py rows.csv --root ~/audionets-runs/speech-pool-8k

Mixtures with a built-in talker (not in the pool) are left out and counted. A pool built
before the ``f0_hz`` column gets it with ``audionets prepare-tts-mix POOL`` (audio untouched).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

from audionets.data import speech_pool
from audionets.errors import AudionetsError

#: Band edges of the F0 distance, in semitones.
EDGES = (0.0, 1.0, 2.0, 4.0, 8.0, math.inf)


def pitch_table(rows: list[dict], root: Path, metric: str = "si_snri") -> tuple[list, int]:
    """``([(band, mixtures, mean, median, share below 5 dB)], mixtures left out)``."""
    pool = speech_pool.read_manifest(root)
    speech_pool.check_f0_column(pool, root, "--root")
    f0 = {r["id"]: float(r["f0_hz"]) for r in pool}
    distances, values, left_out = [], [], 0
    for row in rows:
        names = row["id"].split("_")
        if len(names) != 2 or not all(name in f0 for name in names) or not row[metric]:
            left_out += 1
            continue
        distances.append(abs(12 * math.log2(f0[names[0]] / f0[names[1]])))
        values.append(float(row[metric]))
    distances, values = np.array(distances), np.array(values)
    table = []
    for low, high in zip(EDGES, EDGES[1:]):
        chosen = values[(distances >= low) & (distances < high)]
        if chosen.size:
            band = f">={low:g}" if math.isinf(high) else f"{low:g}-{high:g}"
            table.append((band, chosen.size, float(chosen.mean()), float(np.median(chosen)),
                          float((chosen < 5.0).mean())))
    return table, left_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", type=Path, help="the per-mixture CSV of audionets evaluate --out")
    parser.add_argument("--root", type=Path, required=True, help="the speech pool evaluated")
    parser.add_argument("--metric", default="si_snri", help="the column to break down")
    args = parser.parse_args(argv)
    try:
        with open(args.rows, newline="") as file:
            rows = list(csv.DictReader(file))
        if not rows or not {"id", args.metric} <= set(rows[0]):
            raise AudionetsError(f"{args.rows}: not the --out CSV of a separation evaluation "
                                 f"(columns id, {args.metric})")
        table, left_out = pitch_table(rows, args.root.expanduser(), args.metric)
    except (AudionetsError, OSError) as error:
        print(f"pitch_breakdown.py: error: {error}", file=sys.stderr)
        return 1
    print(f"{'F0 distance (semitones)':<24} {'mixtures':>8} {'mean':>7} {'median':>7} "
          f"{'< 5 dB':>7}")
    for band, count, mean, median, low in table:
        print(f"{band:<24} {count:>8} {mean:>7.2f} {median:>7.2f} {low:>7.0%}")
    if left_out:
        print(f"left out: {left_out} mixtures (a talker not in the pool, or no {args.metric})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
