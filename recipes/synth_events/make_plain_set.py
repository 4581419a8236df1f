"""Write the "plain signals" test set: sounds made with ``sox synth``, independently of synth_events.

Sines, square waves, white / pink / brown noise and up / down sweeps (exponential and linear),
at peak levels from -45 to 0 dBFS, lengths from 0.2 to 10 s, written at 16, 44.1 or 8 kHz, no
background, no fades: what a user makes with sox to try a classifier. The folder is a
``manifest_classification`` set (``test.csv`` + ``labels.txt`` with synth_events' 13 labels):

    python recipes/synth_events/make_plain_set.py data/plain_signals
    audionets evaluate cnn-synth-events --data manifest_classification \\
        data.root=data/plain_signals --out plain.csv

Needs the ``sox`` program (``apt-get install sox``). sox synthesises in its repeatable mode and
the level is set here (peak normalisation, 16-bit), so the same command writes the same set.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from itertools import product
from pathlib import Path

import numpy as np
import soundfile as sf

from audionets.data.events import EVENT_CLASSES
from audionets.data.manifest import write_csv

LEVELS_DBFS = (-45.0, -30.0, -15.0, 0.0)
LENGTHS_S = (0.2, 1.0, 3.0, 10.0)
RATES = (16000, 44100, 8000)
#: class -> the sox ``synth`` arguments of its variants (cycled over the level x length grid)
SIGNALS: dict[str, tuple[str, ...]] = {
    "tone": ("sine 220", "sine 440", "sine 1000", "sine 2500"),
    "square": ("square 150", "square 300", "square 440", "square 700"),
    "white_noise": ("whitenoise",),
    "pink_noise": ("pinknoise",),
    "brown_noise": ("brownnoise",),
    "chirp_up": ("sine 200/1600", "sine 400/3000", "sine 300:2400"),
    "chirp_down": ("sine 1600/200", "sine 3000/400", "sine 2400:300"),
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


def write_plain_set(root: Path, levels: tuple[float, ...] = LEVELS_DBFS,
                    lengths: tuple[float, ...] = LENGTHS_S) -> int:
    """Write ``root/test/<class>/*.wav``, ``root/test.csv`` and ``root/labels.txt``; returns
    the number of files (every class at every level and length)."""
    rows = []
    for category, variants in SIGNALS.items():
        folder = root / "test" / category
        folder.mkdir(parents=True, exist_ok=True)
        for k, (level, seconds) in enumerate(product(levels, lengths)):
            # a Latin square over (level, length): every variant meets every length
            signal = variants[(k + k // len(lengths)) % len(variants)]
            rate = RATES[k % len(RATES)]
            kind = signal.replace(" ", "_").replace("/", "exp").replace(":", "lin")
            name = f"{category}-{kind}-peak{level:+g}dB-{seconds:g}s-{rate / 1000:g}k"
            sox_synth(folder / f"{name}.wav", seconds, rate, signal, level)
            rows.append({"id": name, "path": f"test/{category}/{name}.wav",
                         "label": EVENT_CLASSES.index(category), "category": category,
                         "duration": seconds})
    write_csv(root / "test.csv", list(rows[0]), [list(row.values()) for row in rows])
    (root / "labels.txt").write_text("\n".join(EVENT_CLASSES) + "\n")
    return len(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (created; files are replaced)")
    args = parser.parse_args()
    if shutil.which("sox") is None:
        print("error: sox is not installed; apt-get install sox", file=sys.stderr)
        return 1
    print(f"wrote {write_plain_set(args.out)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
