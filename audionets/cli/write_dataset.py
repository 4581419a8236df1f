"""``audionets write-dataset --dataset NAME --out DIR``: a dataset as WAV files + a CSV manifest.

Writes every item of a registered dataset (``synth_mix``, ``synth_events``, ``tts_mix``, ...)
with :func:`audionets.data.manifest.write_dataset`; the ``manifest_separation`` /
``manifest_classification`` datasets read the folder back (``data.root=DIR``)::

    audionets write-dataset --dataset synth_mix --out data/synth_mix --split test \\
        --num-examples 100 --set num_speakers=3
"""

from __future__ import annotations

import argparse

from audionets.cli._shared import number

HELP = "write a dataset (e.g. synth_mix) as WAV files and a CSV manifest"
_DEFAULT = object()  # --segment-seconds not given: the dataset's own default


def _yaml_value(text: str) -> object:
    """``text`` read as a YAML value as config overrides are (``3``, ``1e-3``, ``null``,
    ``[0, 5]``, ``white``)."""
    from audionets.errors import ConfigError
    from audionets.serialization.yaml_files import parse_yaml

    try:
        return parse_yaml(text)
    except ConfigError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YAML value") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="registered dataset name, e.g. synth_mix")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"),
                        help="which split to write, one per call (default: test)")
    parser.add_argument("--num-examples", type=number(int, 1), default=None,
                        help="items to write (default: the dataset's own count)")
    parser.add_argument("--sample-rate", type=number(int, 1), default=None,
                        help="Hz (default: the dataset's own rate)")
    parser.add_argument("--segment-seconds", type=_yaml_value, default=_DEFAULT,
                        help="item length in seconds, or null for full length")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="another dataset argument (YAML value), e.g. --set num_speakers=3")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing manifest")


def run(args: argparse.Namespace) -> int:
    import math

    import audionets.data  # noqa: F401  (registers the datasets)
    from audionets.audio import check_sample_rate
    from audionets.data.manifest import write_dataset
    from audionets.errors import ConfigError, first_line
    from audionets.registry import DATASETS

    kwargs: dict[str, object] = {"split": args.split}
    if args.num_examples is not None:
        kwargs["num_examples"] = args.num_examples
    if args.sample_rate is not None:
        kwargs["sample_rate"] = check_sample_rate(args.sample_rate, "--sample-rate")
    if args.segment_seconds is not _DEFAULT:
        seconds = args.segment_seconds
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(
                seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0):
            raise ConfigError(f"--segment-seconds: must be a positive number of seconds or null, "
                              f"got {seconds!r}")
        kwargs["segment_seconds"] = seconds
    for pair in args.set:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set num_speakers=3")
        try:
            kwargs[key] = _yaml_value(value)
        except argparse.ArgumentTypeError as err:
            raise ConfigError(f"--set {pair!r}: {err}; e.g. --set gain_db_range=[0,5]") from None
    try:
        dataset = DATASETS.build(args.dataset, _where="data", **kwargs)
    except (TypeError, ValueError) as err:  # e.g. --set num_speakers=abc
        first = first_line(err, 200)
        raise ConfigError(f"--set / dataset arguments of {args.dataset}: {first}; check their "
                          "types") from None
    path = write_dataset(dataset, args.out, args.split, overwrite=args.overwrite)
    print(f"wrote {len(dataset)} examples and {path}")
    return 0
