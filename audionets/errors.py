"""The exceptions audionets raises for problems a user can fix.

Every entry point (CLI and Python API) raises a subclass of :class:`AudionetsError` for bad
input, with a one-line message that names the file or key and says what to do. The CLI prints
that message on one line and exits non-zero; ``--debug`` shows the traceback.
"""

import re
from collections.abc import Collection


class AudionetsError(Exception):
    """Base class of every error audionets reports to its users."""


class AudioError(AudionetsError):
    """An audio file is missing, unreadable, corrupt, empty, or holds NaN/Inf samples."""


class ConfigError(AudionetsError):
    """A config or its overrides have an unknown key, a wrong type or a missing path."""


class ArgumentError(ConfigError, ValueError):
    """A model (or one of its blocks) was given a bad argument value.

    The message names the arguments as the Python keywords they are (``d_model (63) must be
    divisible by nhead (8)``), since a Python user built the model with those; ``arguments``
    lists them so that the config layer can name them as the config keys they came from
    (:meth:`keyed`: ``model.d_model (63) must be divisible by model.nhead (8)``). A
    ``ValueError`` as torch's modules raise for bad arguments, and a :class:`ConfigError`
    so that the CLI reports it on one line.
    """

    def __init__(self, message: str, *arguments: str) -> None:
        super().__init__(message)
        self.arguments = arguments

    def renamed(self, names: dict[str, str]) -> "ArgumentError":
        """The same error with the arguments in ``names`` called by their new names, where the
        message names them as whole words (``d_model``, ``kernel_sizes[1]``, ``frontend.n_fft``
        but not ``encoder_d_model`` nor ``x.d_model``)."""
        old = [name for name in self.arguments if name in names]
        if not old:
            return self
        pattern = "|".join(re.escape(name) for name in sorted(old, key=len, reverse=True))
        message = re.sub(rf"(?<![\w.])({pattern})(?!\w)", lambda m: names[m[1]], str(self))
        return ArgumentError(message, *(names.get(name, name) for name in self.arguments))

    def keyed(self, section: str) -> str:
        """The message with each argument it names as a key of the config ``section``
        (``section="model"``: ``d_model`` -> ``model.d_model``)."""
        return str(self.renamed({name: f"{section}.{name}" for name in self.arguments}))


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
