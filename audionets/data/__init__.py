"""Datasets: synthetic speech, mixtures and sound events, CSV manifests, real-dataset layouts.

Importing this package registers every dataset in :data:`audionets.registry.DATASETS`, so
configs can name them (``data: {name: synth_mix, ...}``).
"""

from audionets.data import events, manifest, mixtures, speech  # noqa: F401  (registers the datasets)
