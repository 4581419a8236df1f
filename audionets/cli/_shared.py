"""Helpers shared by the commands: argument types, the ``--device`` option, the voice options
of the commands that synthesize speech (``prepare-tts-mix``, ``prepare-kws-tts``), the
one-line error and warning reports of the per-file commands (``separate``, ``classify``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable


def number(kind: type, minimum: float, inclusive: bool = True,
           maximum: float | None = None) -> Callable[[str], float]:
    """argparse type: a finite ``kind`` (int or float) ``>= minimum`` (``> minimum`` if not
    inclusive) and, when given, ``<= maximum``."""
    name = "an integer" if kind is int else "a number"
    relation = ">=" if inclusive else ">"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {name}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if value < minimum or (not inclusive and value == minimum):
            raise argparse.ArgumentTypeError(f"{text} must be {relation} {minimum:g}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{text} must be <= {maximum:g}")
        return value

    return parse


def add_voice_arguments(parser: argparse.ArgumentParser, items: str,
                        festival_default: float) -> None:
    """``--engines``, ``--festival-fraction`` and ``--workers``: the options of the commands
    that synthesize speech (``prepare-tts-mix``, ``prepare-kws-tts``); ``items``: what they
    synthesize, ``festival_default``: their settings' default share for festival."""
    parser.add_argument("--engines", nargs="+", choices=("espeak-ng", "festival"),
                        help="synthesizers (default: both)")
    parser.add_argument("--festival-fraction", type=float,
                        help=f"share of {items} spoken by festival voices (default: "
                             f"{festival_default:g})")
    parser.add_argument("--workers", type=number(int, 1), default=min(4, os.cpu_count() or 1),
                        help="synthesis processes at once (default: the CPU count, at most 4)")


def voice_settings(args: argparse.Namespace, **given: object) -> dict[str, object]:
    """The settings the options of :func:`add_voice_arguments`, ``--seed`` and ``given`` set;
    those left out (None) are not in it, so they keep the settings class's defaults."""
    given.update(seed=args.seed, festival_fraction=args.festival_fraction,
                 engines=tuple(args.engines) if args.engines else None)
    return {key: value for key, value in given.items() if value is not None}


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device``, with the one default every command uses: auto."""
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="cpu, cuda, cuda:N or auto (CUDA when there is a GPU, else the "
                             "CPU); default: auto")


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


def print_line(text: str) -> None:
    """Print ``text`` on stdout; a file name that is not valid UTF-8 (surrogate-escaped in
    Python) is written as its original bytes instead of failing."""
    try:
        print(text, flush=True)
    except UnicodeEncodeError:
        sys.stdout.flush()
        sys.stdout.buffer.write(os.fsencode(text) + b"\n")
        sys.stdout.buffer.flush()
