"""SpecAugment's masking (Park et al., 2019) on a classifier's features, in training only.

A classifier built with ``spec_augment: {freq_masks: 2, freq_width: 8, time_masks: 2,
time_width: 10}`` hides, in each training example independently, up to ``freq_masks`` bands
of at most ``freq_width`` feature channels and up to ``time_masks`` spans of at most
``time_width`` frames (each width drawn uniformly in ``[0, width)``, torchaudio's
``mask_along_axis_iid``). The masks go after the input normalisation, so a masked value is
the normalised mean (0), not a loud silence. In ``eval()`` the module is the identity: it
holds no weights, exports (ONNX, TorchScript) as nothing, and a model trained without it
loads unchanged.

Why it helps a classifier: a word or an event must still be recognised when a band or a
moment of it is missing, so the model cannot lean on one formant or one onset (the original
paper: speech recognition; Speech Commands and ESC-50 models use it the same way).
"""

from __future__ import annotations

from typing import Any

import torch
import torchaudio.functional as AF
from torch import nn

from audionets.errors import ArgumentError

KEYS = ("freq_masks", "freq_width", "time_masks", "time_width")


class SpecAugment(nn.Module):
    """``features[B, F, T'] -> features[B, F, T']`` with random bands and spans set to 0
    (training only; see the module docstring)."""

    def __init__(self, freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2,
                 time_width: int = 10) -> None:
        super().__init__()
        self.freq_masks, self.freq_width = int(freq_masks), int(freq_width)
        self.time_masks, self.time_width = int(time_masks), int(time_width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return features
        x = features.unsqueeze(1)  # [B, 1, F, T']: the layout the iid masking takes
        for _ in range(self.freq_masks):
            x = AF.mask_along_axis_iid(x, self.freq_width, 0.0, 2)
        for _ in range(self.time_masks):
            x = AF.mask_along_axis_iid(x, self.time_width, 0.0, 3)
        return x.squeeze(1)

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={getattr(self, key)}" for key in KEYS)


def build_spec_augment(spec: dict[str, Any] | None, where: str = "spec_augment") -> nn.Module:
    """The masking of ``spec`` (keys :data:`KEYS`, each a non-negative int; missing keys take
    :class:`SpecAugment`'s defaults), or the identity for ``None``.

    Raises:
        ArgumentError: naming ``where.<key>`` for an unknown key or a bad value.
    """
    if spec is None:
        return nn.Identity()
    if not isinstance(spec, dict):
        raise ArgumentError(f"{where} must be a mapping, e.g. {{freq_masks: 2, freq_width: 8, "
                            f"time_masks: 2, time_width: 10}}", where)
    for key, value in spec.items():
        if key not in KEYS:
            raise ArgumentError(f"unknown key {where}.{key}; the keys are: {', '.join(KEYS)}",
                                f"{where}.{key}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ArgumentError(f"{where}.{key} must be an integer >= 0, got {value!r}",
                                f"{where}.{key}")
    return SpecAugment(**spec)
