"""Inference: :class:`Separator` and :class:`Classifier` for tensors and audio files."""

from audionets.inference.classifier import DEFAULT_CLASSIFIER, Classifier
from audionets.inference.separator import DEFAULT_SEPARATOR, Separator

__all__ = ["Separator", "Classifier", "DEFAULT_SEPARATOR", "DEFAULT_CLASSIFIER"]
