"""Models, each in its own module and registered in :data:`audionets.registry.MODELS`."""

from audionets.models import autoencoder, classifiers, mlp, rnn, sepformer, sudormrf  # noqa: F401
from audionets.registry import MODELS


def build_model(spec: dict):
    """Build a model from its config ``{"name": ..., **kwargs}``."""
    spec = dict(spec)
    return MODELS.build(spec.pop("name"), _where="model", **spec)
