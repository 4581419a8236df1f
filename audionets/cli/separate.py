"""``audionets separate``: split speech mixtures into one WAV file per speaker.

Prints one line per written file. A file that cannot be processed gets one line on stderr,
``audionets separate: error: <file>: <problem>``; the other files are still processed and the
exit status is 1 if any failed. Model problems, an unusable ``--out-dir`` and inputs whose
outputs would collide (``a/mix.wav b/mix.wav --out-dir out``) stop the command before any file
is touched.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from audionets.cli._shared import add_device_argument, number, print_line, report, warn

HELP = "separate speech mixtures into one WAV file per speaker"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="audio files (WAV, FLAC, OGG; any rate, any number of channels)")
    parser.add_argument("--model", default=None, metavar="NAME|DIR|HUB_ID",
                        help="shipped model name, model or experiment folder, SpeechBrain "
                             "folder or hub id (default: sudormrf-tts-2spk)")
    parser.add_argument("--out-dir", default=None, metavar="DIR",
                        help="folder for the outputs, created if missing (default: each "
                             "input's folder); outputs are <stem>_s1.wav, <stem>_s2.wav, ...")
    parser.add_argument("--chunk-seconds", type=number(float, 0, inclusive=False), default=10.0,
                        metavar="S",
                        help="longer inputs are separated in overlapping chunks of S seconds "
                             "with bounded memory (0.25 to 3600; default: 10)")
    parser.add_argument("--overlap-seconds", type=number(float, 0, inclusive=False), default=1.0,
                        metavar="S",
                        help="overlap between chunks (longer ones are cut to half a chunk); the "
                             "sources of each chunk are matched to the previous chunk's over it "
                             "(default: 1)")
    add_device_argument(parser)
    parser.add_argument("--quantize", choices=["int8"], default=None,
                        help="dynamic int8 quantization of the linear layers (CPU only)")
    parser.add_argument("--shifts", type=number(int, 1), default=1, metavar="N",
                        help="average N passes over the input delayed by fractions of the "
                             "model's encoder hop: a little better (the shipped model: +0.24 dB "
                             "SI-SNRi for 2, +0.31 for 4), N times slower (default: 1)")
    parser.add_argument("--raw-scale", action="store_true",
                        help="keep the model's own output level (default: each source is scaled "
                             "to its share of the mixture, so outputs do not clip)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs (an input is never overwritten)")
    parser.add_argument("--each-channel", action="store_true",
                        help="separate every channel on its own (<stem>_ch1_s1.wav, ...) "
                             "instead of averaging the channels first")


def run(args: argparse.Namespace) -> int:
    from audionets.errors import AudionetsError
    from audionets.inference.outputs import check_distinct_inputs
    from audionets.inference.separator import DEFAULT_SEPARATOR, Separator, check_chunking
    from audionets.utils import prepare_out_dir

    check_chunking(args.chunk_seconds, args.overlap_seconds, "--chunk-seconds",
                   "--overlap-seconds")
    check_distinct_inputs(args.files, args.out_dir)
    device = "cpu" if args.quantize and args.device == "auto" else args.device  # int8: CPU only
    separator = Separator.from_pretrained(
        args.model or DEFAULT_SEPARATOR, device=device, quantize=args.quantize,
        rescale=not args.raw_scale, shifts=args.shifts,
    )
    if args.out_dir is not None:  # one error for a bad --out-dir, not one per file
        prepare_out_dir(args.out_dir)
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
            print_line(str(path))
    return 1 if failed else 0
