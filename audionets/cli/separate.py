"""``audionets separate``: split speech mixtures into one WAV file per speaker.

Prints one line per written file. A file that cannot be processed gets one line on stderr,
``audionets separate: error: <file>: <problem>``; the other files are still processed and the
exit status is 1 if any failed. Model problems stop the command before any file is touched.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

HELP = "separate speech mixtures into one WAV file per speaker"


def positive_float(text: str) -> float:
    """argparse type: a float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="audio files (WAV, FLAC, OGG; any rate, any number of channels)")
    parser.add_argument("--model", default=None, metavar="NAME|DIR|HUB_ID",
                        help="shipped model name, model or experiment folder, SpeechBrain "
                             "folder or hub id (default: sepformer-synth-2spk)")
    parser.add_argument("--out-dir", default=None, metavar="DIR",
                        help="folder for the outputs, created if missing (default: each "
                             "input's folder); outputs are <stem>_s1.wav, <stem>_s2.wav, ...")
    parser.add_argument("--chunk-seconds", type=positive_float, default=10.0, metavar="S",
                        help="longer inputs are separated in overlapping chunks of S seconds "
                             "with bounded memory (default: 10)")
    parser.add_argument("--overlap-seconds", type=non_negative_float, default=1.0, metavar="S",
                        help="overlap between chunks, at most half a chunk (default: 1)")
    parser.add_argument("--device", default="cpu", metavar="cpu|cuda",
                        help="device to run the model on (default: cpu)")
    parser.add_argument("--quantize", choices=["int8"], default=None,
                        help="dynamic int8 quantization of the linear layers (CPU only)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs (an input is never overwritten)")
    parser.add_argument("--each-channel", action="store_true",
                        help="separate every channel on its own (<stem>_ch1_s1.wav, ...) "
                             "instead of averaging the channels first")


def report(command: str, file: str, err: Exception) -> None:
    """Print ``audionets COMMAND: error: FILE: PROBLEM`` as one line on stderr."""
    message = " ".join(str(err).split("\n"))
    if not (message.startswith(str(file)) or message.startswith(str(Path(file)))):
        message = f"{file}: {message}"
    print(f"audionets {command}: error: {message}", file=sys.stderr)


def warn(command: str, file: str, caught: list) -> None:
    """Print the UserWarnings about ``file`` as ``audionets COMMAND: warning: ...`` lines."""
    for item in caught:
        text = str(item.message)
        if issubclass(item.category, UserWarning) and (
            text.startswith(str(file)) or text.startswith(str(Path(file)))
        ):
            print(f"audionets {command}: warning: {text}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from audionets.errors import AudionetsError
    from audionets.inference.separator import DEFAULT_SEPARATOR, Separator

    separator = Separator.from_pretrained(
        args.model or DEFAULT_SEPARATOR, device=args.device, quantize=args.quantize
    )
    failed = 0
    for index, file in enumerate(args.files):
        others = tuple(f for i, f in enumerate(args.files) if i != index)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                paths = separator.separate_file(
                    file, out_dir=args.out_dir, chunk_seconds=args.chunk_seconds,
                    overlap_seconds=args.overlap_seconds, overwrite=args.overwrite,
                    channels="each" if args.each_channel else "mix",
                    progress=sys.stderr.isatty(), protected=others,
                )
        except AudionetsError as err:
            if getattr(args, "debug", False):
                raise
            report("separate", file, err)
            failed += 1
            continue
        warn("separate", file, caught)
        for path in paths:
            print(path, flush=True)
    return 1 if failed else 0
