"""The exceptions audionets raises for problems a user can fix.

Every entry point (CLI and Python API) raises a subclass of :class:`AudionetsError` for bad
input, with a one-line message that names the file or key and says what to do. The CLI prints
that message on one line and exits non-zero; ``--debug`` shows the traceback.
"""


from collections.abc import Collection


class AudionetsError(Exception):
    """Base class of every error audionets reports to its users."""


class AudioError(AudionetsError):
    """An audio file is missing, unreadable, corrupt, empty, or holds NaN/Inf samples."""


class ConfigError(AudionetsError):
    """A config or its overrides have an unknown key, a wrong type or a missing path."""


class CheckpointError(AudionetsError):
    """A model folder or checkpoint is missing, unsafe, from elsewhere, or does not fit."""


class TrainingError(AudionetsError):
    """A training cannot go on: its loss or its weights became NaN or infinite."""


class OutputError(AudionetsError):
    """An output path cannot be written, already exists, or would overwrite an input."""


def first_line(err: BaseException, limit: int | None = None) -> str:
    """The first line of ``err``'s message (at most ``limit`` characters), or its type name when
    the message is empty: how a wrapped library error is quoted in a one-line message."""
    message = str(err).strip()
    line = message.splitlines()[0] if message else type(err).__name__
    return line if limit is None else line[:limit]


def check_choice(key: str, value: object, choices: Collection[object]) -> None:
    """Raise ConfigError naming ``key`` when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of: {', '.join(map(str, choices))}")
