"""Write a keyword test set spoken by flite, a synthesizer the word set never used.

The 35 Speech Commands words, each spoken by flite's voices at three speaking rates and three
peak levels (-30, -12, -1 dBFS), written as flite makes them (the word with flite's own
leading and trailing silence, not centred, any length, 16 kHz; ``kal`` at 8 kHz). ``awb``
(Scottish English) and ``rms`` (US English) are speakers no training voice has; ``kal16``,
``kal`` and ``slt`` are speakers festival also has (``kal_diphone``,
``cmu_us_slt_arctic_hts`` are training voices), spoken here by another engine. The
``category`` column names the word, the ``voice`` column the flite voice. The folder is a
``manifest_classification`` set (``test.csv`` + ``labels.txt``, the 35 words in the
speech_commands dataset's order):

    python recipes/kws_tts/make_flite_set.py data/kws_flite
    audionets evaluate kws-tts-35 --data manifest_classification data.root=data/kws_flite \\
        --out flite.csv

Needs the ``flite`` program (``apt-get install flite``); the same command writes the same set.
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

from audionets.data.kws_tts import WORDS
from audionets.data.manifest import write_csv

HELD_OUT_VOICES = ("awb", "rms")
SEEN_SPEAKER_VOICES = ("kal16", "kal", "slt")
#: flite duration_stretch values: 1.25 is slower speech
STRETCHES = (0.8, 1.0, 1.25)
LEVELS_DBFS = (-30.0, -12.0, -1.0)


def flite_word(out: Path, word: str, voice: str, stretch: float, peak_db: float) -> None:
    """``voice`` says ``word`` at ``stretch`` into ``out`` (16-bit), peak at ``peak_db`` dBFS."""
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}",
                    "-t", word, "-o", str(raw)], check=True, capture_output=True)
    wav, rate = sf.read(raw, dtype="float64")
    raw.unlink()
    wav *= 10.0 ** (peak_db / 20.0) / np.abs(wav).max()
    sf.write(out, np.clip(wav, -1.0, 32767 / 32768), rate, subtype="PCM_16")


def write_flite_set(root: Path, voices: tuple[str, ...] = HELD_OUT_VOICES + SEEN_SPEAKER_VOICES,
                    ) -> int:
    """Write ``root/test/<word>/*.wav``, ``root/test.csv`` and ``root/labels.txt``; returns
    the number of files (every word by every voice at every rate; levels in turn)."""
    labels = sorted(WORDS)
    rows = []
    for word in labels:
        folder = root / "test" / word
        folder.mkdir(parents=True, exist_ok=True)
        for k, (voice, stretch) in enumerate(product(voices, STRETCHES)):
            level = LEVELS_DBFS[(k + labels.index(word)) % len(LEVELS_DBFS)]
            name = f"{word}-{voice}-x{stretch:g}-peak{level:+g}dB"
            flite_word(folder / f"{name}.wav", word, voice, stretch, level)
            rows.append({"id": name, "path": f"test/{word}/{name}.wav",
                         "label": labels.index(word), "category": word, "voice": voice,
                         "held_out_speaker": voice in HELD_OUT_VOICES})
    write_csv(root / "test.csv", list(rows[0]), [list(row.values()) for row in rows])
    (root / "labels.txt").write_text("\n".join(labels) + "\n")
    return len(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (created; files are replaced)")
    args = parser.parse_args()
    if shutil.which("flite") is None:
        print("error: flite is not installed; apt-get install flite", file=sys.stderr)
        return 1
    print(f"wrote {write_flite_set(args.out)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
