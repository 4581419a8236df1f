"""audionets: audio classification and speech separation with PyTorch.

Public API::

    from audionets import Separator, Classifier
    sep = Separator.from_pretrained("sudormrf-tts-2spk")
    sources = sep.separate_batch(mix)          # [B, T] -> [B, T, n_src]
"""

from audionets._version import __version__
from audionets.errors import (
    AudioError,
    AudionetsError,
    CheckpointError,
    ConfigError,
    OutputError,
)

__all__ = [
    "__version__",
    "AudionetsError",
    "AudioError",
    "CheckpointError",
    "ConfigError",
    "OutputError",
    "Separator",
    "Classifier",
]


def __getattr__(name: str):
    # Lazy so that ``import audionets`` (and ``audionets --help``) does not import torch.
    if name in ("Separator", "Classifier"):
        from audionets import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'audionets' has no attribute {name!r}")
