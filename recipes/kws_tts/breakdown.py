"""Accuracy of a keyword evaluation per synthesizer, language and festival speaker.

``audionets evaluate`` scores every clip of a split (``--out rows.csv``: ``id``, ``label``,
``prediction``, ``correct``); this script finds the voice that spoke each clip
(:func:`audionets.data.kws_tts.clip_voices`) and prints the accuracy of each group and the
most frequent confusions, the figures of the ``kws-tts-35`` card:

    audionets evaluate kws-tts-35 --data recipes/kws_tts/config.yaml \\
        data.root=~/audionets-runs/kws-tts-16k --out test.csv
    python recipes/kws_tts/breakdown.py test.csv --root ~/audionets-runs/kws-tts-16k

Run it on the machine that built the set (or one with the same synthesizer voices): the
voices are found by planning the set again, and a set planned with other voices is refused.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter, defaultdict
from pathlib import Path

from audionets.data.kws_tts import clip_voices
from audionets.errors import AudionetsError


def group_accuracy(rows: list[dict], key) -> list[tuple[str, int, float]]:
    """``(group, clips, accuracy)`` per value of ``key(row)``, worst first."""
    groups: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(int(row["correct"]))
    table = [(name, len(hits), sum(hits) / len(hits)) for name, hits in groups.items()]
    return sorted(table, key=lambda entry: (entry[2], entry[0]))


def breakdown(rows: list[dict], root: Path, confusions: int = 10) -> str:
    """The report for evaluation ``rows`` of the word set in ``root``."""
    takes = clip_voices(root)
    missing = [row["id"] for row in rows if f"{row['id']}.wav" not in takes]
    if missing:
        raise AudionetsError(f"{missing[0]}: no such clip in the word set {root} "
                             f"({len(missing)} of {len(rows)} rows); give the set evaluated")
    voice = {row["id"]: takes[f"{row['id']}.wav"].voice for row in rows}
    sections = [
        ("all", lambda row: "all"),
        ("engine", lambda row: voice[row["id"]].engine),
        ("engine, language", lambda row: f"{voice[row['id']].engine} {voice[row['id']].language}"),
        ("festival speaker", lambda row: voice[row["id"]].name),
    ]
    lines = []
    for title, key in sections:
        chosen = [r for r in rows if title != "festival speaker"
                  or voice[r["id"]].engine == "festival"]
        if not chosen:
            continue
        lines.append(f"{title:<24} {'clips':>6} {'accuracy':>9}")
        lines += [f"  {name:<22} {count:>6} {accuracy:>9.3f}"
                  for name, count, accuracy in group_accuracy(chosen, key)]
    wrong = Counter((r["label"], r["prediction"]) for r in rows if not int(r["correct"]))
    lines.append("most frequent confusions (label -> prediction: clips)")
    lines += [f"  {label} -> {prediction}: {count}"
              for (label, prediction), count in wrong.most_common(confusions)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", type=Path, help="the per-clip CSV of audionets evaluate --out")
    parser.add_argument("--root", type=Path, required=True, help="the word set evaluated")
    parser.add_argument("--confusions", type=int, default=10, help="how many to list")
    args = parser.parse_args(argv)
    try:
        with open(args.rows, newline="") as file:
            rows = list(csv.DictReader(file))
        if not rows or not {"id", "label", "prediction", "correct"} <= set(rows[0]):
            raise AudionetsError(f"{args.rows}: not the --out CSV of a keyword evaluation "
                                 "(columns id, label, prediction, correct)")
        print(breakdown(rows, args.root.expanduser(), args.confusions))
    except (AudionetsError, OSError) as error:
        print(f"breakdown.py: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
