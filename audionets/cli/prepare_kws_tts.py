"""``audionets prepare-kws-tts OUT_DIR``: the 35 Speech Commands words spoken by synthetic voices.

Runs :func:`audionets.data.kws_tts.build`: espeak-ng and festival voices (``apt-get install -y
espeak-ng festival festvox-...``), split by voice, in parallel processes with a progress bar,
into a folder in the Speech Commands v0.02 layout (``recipes/kws_tts`` and
``recipes/speech_commands`` train on it). An interrupted build continues where it stopped when
run again with the same options; a finished one is reused.
"""

from __future__ import annotations

import argparse

from audionets.cli._shared import add_voice_arguments, number, voice_settings

HELP = "build a synthetic Speech Commands (35 words, espeak-ng + festival voices)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="word-set folder (the data.root of recipes/kws_tts)")
    parser.add_argument("--per-word", nargs=3, type=number(int, 1),
                        metavar=("TRAIN", "VALID", "TEST"),
                        help="takes of each word per split (default: 300 30 60)")
    parser.add_argument("--seed", type=int, help="fixes voices, prosody, noises (default: 0)")
    add_voice_arguments(parser, "takes", festival_default=0.1)


def run(args: argparse.Namespace) -> int:
    import json

    from audionets.data import kws_tts

    settings = kws_tts.WordSetSettings(**voice_settings(
        args, per_word=tuple(args.per_word) if args.per_word else None))
    root = kws_tts.build(args.out_dir, settings, workers=args.workers)
    stats = json.loads((root / "build.json").read_text())
    counts = "/".join(str(stats["clips"][s]) for s in ("train", "valid", "test"))
    voices = "/".join(str(stats["voices"][s]) for s in ("train", "valid", "test"))
    print(f"word set ready: {root} (train/valid/test clips {counts}, voices {voices}, "
          f"{len(stats['failed'])} failed, {stats['clips_per_second']} clips/s)")
    return 0
