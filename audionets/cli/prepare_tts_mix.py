"""``audionets prepare-tts-mix OUT_DIR``: build the espeak-ng utterance pool of ``tts_mix``.

Runs :func:`audionets.data.tts_mix.prepare` (needs ``apt-get install -y espeak-ng``); a pool
already built with the same settings is reused. The ``tts_mix`` dataset also builds it on first
use when ``data.auto_prepare`` is true.
"""

from __future__ import annotations

import argparse

from audionets.cli._shared import number

HELP = "build the espeak-ng utterance pool the tts_mix dataset mixes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="pool folder (the tts_mix data.root)")
    parser.add_argument("--num-utterances", type=number(int, 1), default=3000,
                        help="utterances in the pool (default: 3000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-rate", type=number(int, 1), default=16000,
                        help="Hz (default: 16000)")
    parser.add_argument("--workers", type=number(int, 1), default=4,
                        help="espeak-ng processes at once (default: 4)")


def run(args: argparse.Namespace) -> int:
    from audionets.data.tts_mix import prepare

    manifest = prepare(args.out_dir, args.num_utterances, args.seed, args.sample_rate,
                       args.workers)
    print(f"tts_mix pool ready: {manifest}")
    return 0
