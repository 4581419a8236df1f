"""``Classifier``: audio classification of tensors and files.

::

    from audionets import Classifier
    clf = Classifier.from_pretrained("cnn-synth-events")
    probs = clf.classify_batch(wav)             # [B, T] at clf.sample_rate -> [B, C]
    clf.classify_file("dog.flac", top_k=3)      # [("dog", 0.91), ("siren", 0.05), ...]
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from audionets import audio
from audionets.errors import CheckpointError, ConfigError
from audionets.inference._common import (
    check_batch,
    check_outputs,
    is_exported_model,
    load_checked,
)
from audionets.tasks import ClassificationTask
from audionets.utils import progress_bar, resolve_device

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
        window_seconds: files longer than this are classified window by window (consecutive
            windows of this length, streamed from disk, ``batch_size`` at a time) and the
            class probabilities averaged, weighted by window length: memory stays bounded and
            the model sees inputs like its training crops. None: one pass over the whole file.
            ``from_pretrained`` uses the training segment length when the config has one.
        batch_size: windows per forward pass.
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
        window_seconds: float | None = None,
        batch_size: int = 16,
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
        if window_seconds is not None and not window_seconds > 0:
            raise ConfigError(f"window_seconds must be > 0 or None; got {window_seconds}")
        self.window_seconds = window_seconds
        self.batch_size = max(1, int(batch_size))

    @classmethod
    def from_pretrained(
        cls, source: str | os.PathLike = DEFAULT_CLASSIFIER, device: str | torch.device = "cpu",
        **kwargs
    ) -> "Classifier":
        """Load a classification model by shipped name, folder, experiment dir or hub id, or
        an exported ONNX / TorchScript folder (``audionets export --format onnx``).

        On CPU the model's linear layers get oneDNN pre-packed weights, as in
        :meth:`Separator.from_pretrained` (same outputs to float rounding). Raises
        :class:`~audionets.errors.CheckpointError` for a missing, unsafe or mismatched model, a
        model without labels, or a model of another task.
        """
        from audionets.nn.prepack import prepack_linear_layers

        device = resolve_device(device)  # "auto", or a one-line error before any loading
        model, meta = load_checked(source, device=device, task=ClassificationTask.name)
        if not is_exported_model(model):  # not an exported model (it runs as exported)
            model = prepack_linear_layers(model)  # leaves layers on another device as they are
        if not meta.labels:
            raise CheckpointError(f"{source}: the model has no labels; add labels to config.yaml")
        segment = (meta.config.get("data") or {}).get("segment_seconds")
        if segment:
            kwargs.setdefault("min_seconds", float(segment))
            kwargs.setdefault("window_seconds", float(segment))
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
        return check_outputs(logits.float().softmax(dim=-1).cpu(), self.source)

    def classify_file(self, path: str | os.PathLike, top_k: int = 5,
                      progress: bool | Callable[[int, int], None] = False
                      ) -> list[tuple[str, float]]:
        """The ``top_k`` most likely ``(label, probability)`` pairs for an audio file.

        The file is averaged to mono and resampled to :attr:`sample_rate`. A file longer than
        ``window_seconds`` is classified window by window and the probabilities averaged
        (see the class docstring; ``progress`` shows a bar over the windows, or a callable is
        called as ``progress(done, total)`` after each batch of windows); a shorter one
        is one input. An all-zero (silent) file is classified too, with a ``UserWarning``.
        Raises :class:`~audionets.errors.AudioError` for unreadable, corrupt, truncated or
        NaN/Inf input.
        """
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ConfigError(f"top_k must be a whole number of at least 1; got {top_k!r}")
        path = Path(path)
        meta = audio.info(path)
        rate, frames = meta.sample_rate, meta.num_frames
        window = None if self.window_seconds is None else max(1, round(self.window_seconds * rate))
        if window is None or frames <= window:
            wav, _ = audio.load(path, sample_rate=self.sample_rate, mono=True)
            heard, probs = bool(wav.any()), self.classify_batch(wav)[0]
        else:
            heard, probs = self._classify_windows(path, rate, frames, window, progress)
        if not heard:
            warnings.warn(f"{path}: input is silent (all samples are zero); the classes are the "
                          "model's response to silence", UserWarning, stacklevel=2)
        values, indices = probs.topk(min(top_k, len(self.labels)))
        return [(self.labels[i], float(p)) for p, i in zip(values.tolist(), indices.tolist())]

    def _classify_windows(self, path: Path, rate: int, frames: int, window: int,
                          progress: bool | Callable[[int, int], None]
                          ) -> tuple[bool, torch.Tensor]:
        """(any sample non-zero, window-length-weighted mean probabilities ``[C]``)."""
        bar = progress_bar(math.ceil(frames / window), path.name, progress, unit="window")
        total = torch.zeros(len(self.labels), dtype=torch.float64)
        heard, batch = False, []

        def flush() -> None:
            nonlocal total
            # the windows of a batch have one length: one resampling call for all of them
            stacked = audio.resample(torch.stack(batch), rate, self.sample_rate)
            weight = float(batch[0].shape[-1])
            total += self.classify_batch(stacked).double().sum(dim=0) * weight
            bar.update(len(batch))
            batch.clear()

        for block in audio.stream(path, block_frames=window, mono=True):
            heard = heard or bool(block.any())
            if batch and block.shape[-1] != batch[0].shape[-1]:
                flush()  # the shorter last window goes on its own
            batch.append(block[0])
            if len(batch) == self.batch_size:
                flush()
        if batch:
            flush()
        bar.close()
        return heard, (total / frames).float()
