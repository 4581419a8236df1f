"""Write the "plain signals" sets: sounds made with ``sox synth``, independently of synth_events.

Sines, square waves, white / pink / brown noise and up / down sweeps (exponential and linear),
at peak levels from -45 to 0 dBFS, lengths from 0.2 to 10 s, written at 16, 44.1 or 8 kHz, no
background, no fades: what a user makes with sox to try a classifier. The folder is a
``manifest_classification`` set (``test.csv`` + ``labels.txt`` with synth_events' 13 labels):

    python recipes/synth_events/make_plain_set.py data/plain_signals
    audionets evaluate cnn-synth-events --data manifest_classification \\
        data.root=data/plain_signals --out plain.csv

``--split valid`` writes ``valid.csv`` and ``valid/``: the same kinds of signal at other
frequencies, levels, lengths and rates, for choosing between models without looking at the
test set (``evaluate ... --split valid``).

Needs the ``sox`` program (``apt-get install sox``). sox synthesises in its repeatable mode and
the level is set here (peak normalisation, 16-bit), so the same command writes the same set.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np
import soundfile as sf

from audionets.data.events import EVENT_CLASSES
from audionets.data.manifest import write_csv

@dataclass(frozen=True)
class Grid:
    """One split's signals: every class at every level x length, variants and rates cycled."""

    levels_dbfs: tuple[float, ...]
    lengths_s: tuple[float, ...]
    rates: tuple[int, ...]
    #: class -> the sox ``synth`` arguments of its variants
    signals: dict[str, tuple[str, ...]]


NOISES = {"white_noise": ("whitenoise",), "pink_noise": ("pinknoise",),
          "brown_noise": ("brownnoise",)}
SPLITS = {
    "test": Grid((-45.0, -30.0, -15.0, 0.0), (0.2, 1.0, 3.0, 10.0), (16000, 44100, 8000), {
        "tone": ("sine 220", "sine 440", "sine 1000", "sine 2500"),
        "square": ("square 150", "square 300", "square 440", "square 700"),
        **NOISES,
        "chirp_up": ("sine 200/1600", "sine 400/3000", "sine 300:2400"),
        "chirp_down": ("sine 1600/200", "sine 3000/400", "sine 2400:300"),
    }),
    "valid": Grid((-40.0, -22.0, -8.0, -1.0), (0.3, 2.0, 8.0), (8000, 22050, 11025, 48000), {
        "tone": ("sine 330", "sine 660", "sine 1500", "sine 3200"),
        "square": ("square 200", "square 350", "square 550", "square 900"),
        **NOISES,
        "chirp_up": ("sine 250/2000", "sine 500/2500", "sine 350:2800"),
        "chirp_down": ("sine 2000/250", "sine 2500/500", "sine 2800:350"),
    }),
}


def sox_synth(out: Path, seconds: float, rate: int, signal: str, peak_db: float) -> None:
    """Write a ``seconds`` long ``signal`` made by ``sox -n ... synth`` at ``rate`` Hz to
    ``out`` (16-bit), scaled so that its peak is ``peak_db`` dBFS.

    sox writes 32-bit float and the scaling is done here: sox's own ``gain -n`` regenerates
    the noise for its second pass and misses the level by up to 5 dB.
    """
    raw = out.with_suffix(".f32.wav")
    command = ["sox", "-R", "-D", "-n", "-r", str(rate), "-e", "floating-point", "-b", "32",
               "-c", "1", str(raw), "synth", f"{seconds:g}", *signal.split()]
    subprocess.run(command, check=True, capture_output=True)
    wav, _ = sf.read(raw, dtype="float64")
    raw.unlink()
    wav *= 10.0 ** (peak_db / 20.0) / np.abs(wav).max()
    sf.write(out, np.clip(wav, -1.0, 32767 / 32768), rate, subtype="PCM_16")


def write_plain_set(root: Path, split: str = "test", grid: Grid | None = None) -> int:
    """Write ``root/<split>/<class>/*.wav``, ``root/<split>.csv`` and ``root/labels.txt``;
    returns the number of files (every class at every level and length of ``grid``, by
    default the split's)."""
    grid, rows = grid or SPLITS[split], []
    lengths = grid.lengths_s
    for category, variants in grid.signals.items():
        folder = root / split / category
        folder.mkdir(parents=True, exist_ok=True)
        for k, (level, seconds) in enumerate(product(grid.levels_dbfs, lengths)):
            # a Latin square over (level, length): every variant meets every length
            signal = variants[(k + k // len(lengths)) % len(variants)]
            rate = grid.rates[k % len(grid.rates)]
            kind = signal.replace(" ", "_").replace("/", "exp").replace(":", "lin")
            name = f"{category}-{kind}-peak{level:+g}dB-{seconds:g}s-{rate / 1000:g}k"
            sox_synth(folder / f"{name}.wav", seconds, rate, signal, level)
            rows.append({"id": name, "path": f"{split}/{category}/{name}.wav",
                         "label": EVENT_CLASSES.index(category), "category": category,
                         "duration": seconds})
    write_csv(root / f"{split}.csv", list(rows[0]), [list(row.values()) for row in rows])
    (root / "labels.txt").write_text("\n".join(EVENT_CLASSES) + "\n")
    return len(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (created; files are replaced)")
    parser.add_argument("--split", choices=sorted(SPLITS), default="test",
                        help="test (default) or valid, a second grid for choosing models")
    args = parser.parse_args()
    if shutil.which("sox") is None:
        print("error: sox is not installed; apt-get install sox", file=sys.stderr)
        return 1
    print(f"wrote {write_plain_set(args.out, args.split)} {args.split} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
