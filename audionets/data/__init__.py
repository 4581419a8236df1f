"""Datasets: synthetic speech, mixtures and sound events, CSV manifests, real-dataset layouts.

Importing this package registers every dataset in :data:`audionets.registry.DATASETS`, so
configs can name them (``data: {name: synth_mix, ...}``).
"""

from audionets.data import events, manifest, mixtures, speech  # noqa: F401  (registers the datasets)
from audionets.data import esc50, speech_commands, urbansound8k, wsj0mix, librimix, wham, tts_mix  # noqa: F401,E501

from pathlib import Path as _Path

#: Two-talker mixtures of held-out synthesized voices shipped for ``audionets demo``
#: (``index.json`` + one 2-channel FLAC of the sources each; the mixture is their sum).
DEMO_MIXTURES = _Path(__file__).parent / "demo"
