"""Write the held-out speech mixtures that ship for ``audionets demo`` (audionets/data/demo/).

    python recipes/tts_mix/make_demo_mixtures.py POOL_DIR audionets/data/demo --count 4

Takes the first ``--count`` mixtures of the ``tts_mix`` test split of the pool (voices,
languages and variants never heard in training; fixed by the dataset's seed), cropped to at
most ``--seconds``, and writes each one's two sources as a 2-channel 16-bit FLAC (the
mixture is their sum) plus ``index.json`` with the voices, languages and texts.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import audionets.data  # noqa: F401  (registers the datasets)
from audionets import audio
from audionets.registry import DATASETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pool", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    with open(args.pool / "manifest.csv", newline="") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    test = DATASETS.build("tts_mix", split="test", root=str(args.pool), segment_seconds=None,
                          auto_prepare=False)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for index in range(args.count):
        item = test[index]
        sources = item["sources"][:, : int(args.seconds * test.sample_rate)]
        name = f"tts-test-{index}.flac"
        audio.save(args.out_dir / name, sources, test.sample_rate, subtype="PCM_16")
        used = [rows[uid] for uid in item["id"].split("_")]
        entries.append({"id": item["id"], "file": name,
                        "voices": [r["voice"] for r in used],
                        "languages": [r["language"] for r in used],
                        "texts": [r["text"] for r in used]})
    (args.out_dir / "index.json").write_text(json.dumps(entries, indent=1) + "\n")
    print(json.dumps(entries, indent=1))


if __name__ == "__main__":
    main()
