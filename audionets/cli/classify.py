"""``audionets classify``: the most likely classes of audio files.

Prints one line per file, ``FILE<TAB>label (p) label (p) ...``, or with ``--json`` one JSON
object per line (JSON Lines): ``{"file": ..., "predictions": [{"label": ..., "probability":
...}, ...]}``. A file that cannot be read gets one line on stderr,
``audionets classify: error: <file>: <problem>``; the other files are still processed and the
exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from audionets.cli._shared import add_device_argument, number, print_line, report, warn

HELP = "classify audio files with a trained classifier"



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="audio files (WAV, FLAC, OGG; any rate, averaged to mono)")
    parser.add_argument("--model", default=None, metavar="NAME|DIR|HUB_ID",
                        help="shipped model name, model or experiment folder, or hub id "
                             "(default: cnn-synth-events)")
    parser.add_argument("--top-k", type=number(int, 1), default=5, metavar="K",
                        help="number of classes to print per file (default: 5)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per file (JSON Lines)")
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    from audionets.errors import AudionetsError
    from audionets.inference.classifier import DEFAULT_CLASSIFIER, Classifier

    classifier = Classifier.from_pretrained(args.model or DEFAULT_CLASSIFIER, device=args.device)
    failed = 0
    for file in args.files:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                top = classifier.classify_file(file, top_k=args.top_k,
                                               progress=sys.stderr.isatty())
        except AudionetsError as err:
            if getattr(args, "debug", False):
                raise
            report("classify", file, err)
            failed += 1
            continue
        warn("classify", file, caught)
        if args.json:
            predictions = [{"label": label, "probability": round(p, 6)} for label, p in top]
            print(json.dumps({"file": str(file), "predictions": predictions}), flush=True)
        else:
            print_line(f"{file}\t" + " ".join(f"{label} ({p:.3f})" for label, p in top))
    return 1 if failed else 0
