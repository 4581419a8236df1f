"""``audionets prepare-tts-mix OUT_DIR``: build the espeak-ng utterance pool of ``tts_mix``.

Runs :func:`audionets.data.tts_mix.prepare` (needs ``apt-get install -y espeak-ng``); a pool
already built with the same settings is reused. The ``tts_mix`` dataset also builds it on first
use when ``data.auto_prepare`` is true.
"""

from __future__ import annotations

import argparse

HELP = "build the espeak-ng utterance pool the tts_mix dataset mixes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="pool folder (the tts_mix data.root)")
    parser.add_argument("--num-utterances", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--workers", type=int, default=4, help="espeak-ng processes at once")


def run(args: argparse.Namespace) -> int:
    from audionets.data.tts_mix import prepare

    manifest = prepare(args.out_dir, args.num_utterances, args.seed, args.sample_rate,
                       args.workers)
    print(f"tts_mix pool ready: {manifest}")
    return 0
