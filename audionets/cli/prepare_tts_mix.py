"""``audionets prepare-tts-mix OUT_DIR``: build the speech pool that ``tts_mix`` mixes.

Runs :func:`audionets.data.speech_pool.build`: espeak-ng and festival voices (``apt-get install
-y espeak-ng festival festvox-...``), split by voice, in parallel processes with a progress bar.
An interrupted build continues where it stopped when run again with the same settings; a
finished pool with the same settings is reused. The ``tts_mix`` dataset also builds it on first
use when ``data.auto_prepare`` is true. Options left out take the defaults of
:class:`~audionets.data.speech_pool.PoolSettings` (so the recipe's ``data.pool`` matches).
"""

from __future__ import annotations

import argparse
import json
import math

from audionets.cli._shared import add_voice_arguments, number, voice_settings

HELP = "build the synthesized speech pool (espeak-ng + festival) that tts_mix mixes"
#: Mean utterance length of the pool's sentences, seconds (for --hours).
SECONDS_PER_UTTERANCE = 4.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="pool folder (the tts_mix data.root)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--num-utterances", type=number(int, 3),
                      help="utterances in the pool (default: 12000, about 15 h)")
    size.add_argument("--hours", type=number(float, 0.001),
                      help=f"about this many hours of speech (utterances = hours * 3600 / "
                           f"{SECONDS_PER_UTTERANCE})")
    parser.add_argument("--seed", type=int, help="fixes voices, texts, prosody (default: 0)")
    parser.add_argument("--sample-rate", type=int,
                        help="Hz, 4000-48000 (default: 8000, the separator's rate)")
    add_voice_arguments(parser, "utterances", festival_default=0.2)


def run(args: argparse.Namespace) -> int:
    from audionets.data import speech_pool

    count = args.num_utterances
    if args.hours is not None:
        count = math.ceil(args.hours * 3600 / SECONDS_PER_UTTERANCE)
    settings = speech_pool.PoolSettings(**voice_settings(
        args, num_utterances=count, sample_rate=args.sample_rate))
    manifest = speech_pool.build(args.out_dir, settings, workers=args.workers)
    stats = json.loads((manifest.parent / "build.json").read_text())
    voices = "/".join(str(stats["voices"][s]) for s in ("train", "valid", "test"))
    print(f"speech pool ready: {manifest} ({stats['utterances']} utterances, {stats['hours']} h, "
          f"train/valid/test voices {voices}, built at {stats['real_time_factor']}x real time)")
    return 0
