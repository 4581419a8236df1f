"""``Classifier``: audio classification of tensors and files.

::

    from audionets import Classifier
    clf = Classifier.from_pretrained("cnn-synth-events")
    probs = clf.classify_batch(wav)             # [B, T] at clf.sample_rate -> [B, C]
    clf.classify_file("dog.flac", top_k=3)      # [("dog", 0.91), ("siren", 0.05), ...]
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from audionets import audio
from audionets.errors import CheckpointError
from audionets.inference._common import check_batch, load_checked
from audionets.utils import resolve_device

#: Shipped model used when no model is named.
DEFAULT_CLASSIFIER = "cnn-synth-events"


class Classifier:
    """A classification model ready for inference.

    Args:
        model: a module mapping ``wav [B, T] -> logits [B, C]``.
        sample_rate: the rate the model expects, in Hz.
        labels: the C class names, in logit order.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        min_seconds: inputs shorter than this are zero-padded at the end (as the training
            data loader pads short clips), so that very short clips still reach the pooling
            layers; ``from_pretrained`` uses the training segment length when the config has
            one.
        source: where the model came from (for messages).
    """

    def __init__(
        self,
        model: nn.Module,
        sample_rate: int,
        labels: list[str],
        device: str | torch.device = "cpu",
        min_seconds: float = 0.5,
        source: str | None = None,
    ) -> None:
        num_classes = getattr(model, "num_classes", None)
        if num_classes is not None and num_classes != len(labels):
            raise CheckpointError(
                f"{source or 'model'}: {len(labels)} labels for a model with {num_classes} "
                "classes; fix the labels in config.yaml"
            )
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.sample_rate = int(sample_rate)
        self.labels = list(labels)
        self.min_samples = max(1, round(min_seconds * self.sample_rate))
        self.source = source

    @classmethod
    def from_pretrained(
        cls, source: str | os.PathLike = DEFAULT_CLASSIFIER, device: str = "cpu", **kwargs
    ) -> "Classifier":
        """Load a classification model by shipped name, folder, experiment dir or hub id.

        On CPU the model's linear layers get oneDNN pre-packed weights, as in
        :meth:`Separator.from_pretrained` (same outputs to float rounding). Raises
        :class:`~audionets.errors.CheckpointError` for a missing, unsafe or mismatched model, a
        model without labels, or a model of another task.
        """
        from audionets.nn.prepack import prepack_linear_layers

        model, meta = load_checked(source, device=device, task="classification")
        model = prepack_linear_layers(model)  # leaves layers on another device as they are
        if not meta.labels:
            raise CheckpointError(f"{source}: the model has no labels; add labels to config.yaml")
        segment = (meta.config.get("data") or {}).get("segment_seconds")
        if segment and "min_seconds" not in kwargs:
            kwargs["min_seconds"] = float(segment)
        return cls(model, meta.sample_rate, meta.labels, device=device, source=str(source),
                   **kwargs)

    def __repr__(self) -> str:
        return (f"Classifier(source={self.source!r}, sample_rate={self.sample_rate}, "
                f"labels={len(self.labels)}, device={str(self.device)!r})")

    def classify_batch(self, wav: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``[B, C]`` (softmax of the logits) for ``wav [B, T]`` at
        :attr:`sample_rate`; float32 on the CPU.

        Raises :class:`~audionets.errors.AudioError` for a wrong shape or NaN/Inf samples.
        """
        wav = check_batch(wav, "wav")
        if wav.shape[-1] < self.min_samples:
            wav = torch.nn.functional.pad(wav, (0, self.min_samples - wav.shape[-1]))
        with torch.inference_mode():
            logits = self.model(wav.to(self.device))
        return logits.float().softmax(dim=-1).cpu()

    def classify_file(self, path: str | os.PathLike, top_k: int = 5) -> list[tuple[str, float]]:
        """The ``top_k`` most likely ``(label, probability)`` pairs for an audio file.

        The file is averaged to mono and resampled to :attr:`sample_rate`; the whole file is
        one input. An all-zero (silent) file is classified too, with a ``UserWarning``.
        Raises :class:`~audionets.errors.AudioError` for unreadable, corrupt, truncated or
        NaN/Inf input.
        """
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1; got {top_k}")
        path = Path(path)
        wav, _ = audio.load(path, sample_rate=self.sample_rate, mono=True)
        if not wav.any():
            warnings.warn(f"{path}: input is silent (all samples are zero); the classes are the "
                          "model's response to silence", UserWarning, stacklevel=2)
        probs = self.classify_batch(wav)[0]
        values, indices = probs.topk(min(top_k, len(self.labels)))
        return [(self.labels[i], float(p)) for p, i in zip(values.tolist(), indices.tolist())]
