"""The ``audionets`` command line: one subcommand per module in this package.

A command's module is its name with ``_`` for ``-`` (``write-dataset``: ``write_dataset.py``).

Each subcommand module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int`` (the exit status). Modules import heavy dependencies inside ``run`` so
that ``audionets --help`` stays fast.

A subcommand with an ``overrides`` positional (``key=value`` words) takes them anywhere on its
command line, before or after its options (``train CONFIG --resume a=1 b=2``).

Errors a user can fix (:class:`~audionets.errors.AudionetsError`) are printed as one line on
stderr with a non-zero exit status; ``--debug`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from audionets._version import __version__
from audionets.errors import AudionetsError

COMMANDS = ("train", "evaluate", "separate", "classify", "demo", "export", "write-dataset",
            "prepare-tts-mix", "prepare-kws-tts", "serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audionets",
        description="Audio classification and speech separation with PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"audionets {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks instead of one-line errors"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"audionets.cli.{name.replace('-', '_')}")
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show full tracebacks instead of one-line errors")
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, except that ``key=value`` words after a subcommand's options join
    its ``overrides`` (argparse stops filling a subcommand's positionals at its first option)."""
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all(
            "=" in word and not word.startswith("-") for word in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``with``/``finally`` cleans up (the hidden
    ``.partial`` outputs of ``separate``) before the process exits with 143."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``audionets`` and ``python -m audionets``; returns the exit status."""
    parser = build_parser()
    args = parse_args(parser, argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # train installs its own handler while it runs (a checkpoint, then a clean stop)
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(args)
    finally:
        if previous is not None:  # main() called from Python: give the handler back
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    """``args._run(args)`` with the CLI's error reporting (see the module docstring)."""
    try:
        return int(args._run(args) or 0)
    except AudionetsError as err:
        if args.debug:
            raise
        print(f"audionets {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        terminated = isinstance(err, Terminated)
        print(f"audionets {args.command}: {'terminated' if terminated else 'interrupted'}",
              file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    except BrokenPipeError:  # e.g. `audionets classify *.wav | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
