"""Training-time waveform augmentation: the degradations real input has and synthetic data lacks.

A dataset that takes ``augment: {...}`` (``data.augment`` in a config) builds a
:class:`WaveAugment` from it with :func:`build_augment` and calls it on each training item
``[T]``. Each step below is applied with its own probability, in this order, with the
functions of :mod:`audionets.data.transforms`; the output keeps the input's length:

a. ``speed_prob``: played faster or slower by a factor drawn uniformly from ``speed_range``
   (:func:`~audionets.data.transforms.speed_perturb`: tempo and pitch together), then
   centre-cropped or zero-padded equally on both sides back to T samples.
b. ``shift_max``: moved in time by a whole number of samples drawn uniformly from
   ``[-shift_max, shift_max]`` seconds, zeros filling the space left (always, when > 0), as
   the time shift of keyword-spotting training.
1. ``reverb_prob``: convolution with a :func:`~audionets.data.transforms.synthetic_rir` of an
   RT60 drawn from ``reverb_rt60`` seconds and a direct-to-reverberant ratio drawn from
   ``reverb_drr_db`` (mild rooms by default).
2. ``band_prob``: a zero-phase band-pass (:func:`~audionets.data.transforms.band_limit`) with a
   low cut-off drawn log-uniformly from ``band_low_hz`` and a high cut-off from
   ``band_high_hz`` (a small loudspeaker, a telephone-like channel).
3. ``resample_prob``: the signal resampled through a rate drawn from ``resample_rates`` and back
   (:func:`~audionets.data.transforms.resample_through`): a file recorded at another rate.
4. ``dc_prob``: a DC offset drawn uniformly from ``[-dc_max, dc_max]`` times the clip's peak
   (relative, so that it keeps its proportion when step 5 sets the level).
5. ``peak_db``: the clip scaled to a peak level drawn uniformly from ``[low, high]`` dBFS
   (always, when set): from very quiet to full scale.

Random draws use ``generator`` (the global torch RNG when None, which the trainer seeds per
item and epoch, so that each epoch sees new degradations of the same clips).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Sequence

import torch

from audionets.data.transforms import (
    add_dc_offset, band_limit, centre_fit, resample_through, reverberate, set_peak_db,
    speed_perturb, synthetic_rir, time_shift,
)
from audionets.errors import ConfigError


@dataclass(frozen=True)
class WaveAugment:
    """The augmentation steps and their ranges (see the module docstring); ``[T] -> [T]``."""

    sample_rate: int
    peak_db: tuple[float, float] | None = None
    speed_prob: float = 0.0
    speed_range: tuple[float, float] = (0.9, 1.1)
    shift_max: float = 0.0
    dc_prob: float = 0.0
    dc_max: float = 0.1
    resample_prob: float = 0.0
    resample_rates: tuple[int, ...] = (8000, 11025, 22050, 44100)
    band_prob: float = 0.0
    band_low_hz: tuple[float, float] = (20.0, 300.0)
    band_high_hz: tuple[float, float] = (3000.0, 7500.0)
    reverb_prob: float = 0.0
    reverb_rt60: tuple[float, float] = (0.1, 0.5)
    reverb_drr_db: tuple[float, float] = (0.0, 10.0)

    def __call__(self, wav: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment one waveform ``[T]`` (or ``[..., T]``, all channels alike); never in place."""

        def chance(prob: float) -> bool:
            return prob > 0 and float(torch.rand((), generator=generator)) < prob

        def draw(low: float, high: float) -> float:
            return low + (high - low) * float(torch.rand((), generator=generator))

        def draw_log(low: float, high: float) -> float:
            return math.exp(draw(math.log(low), math.log(high)))

        if chance(self.speed_prob):
            wav = centre_fit(speed_perturb(wav, draw(*self.speed_range)), wav.shape[-1])
        if self.shift_max > 0:
            most = int(self.shift_max * self.sample_rate)
            wav = time_shift(wav, int(torch.randint(-most, most + 1, (), generator=generator)))
        if chance(self.reverb_prob):
            rir = synthetic_rir(draw(*self.reverb_rt60), self.sample_rate, generator,
                                direct_to_reverb_db=draw(*self.reverb_drr_db))
            wav = reverberate(wav, rir)
        if chance(self.band_prob):
            wav = band_limit(wav, self.sample_rate, draw_log(*self.band_low_hz),
                             min(draw_log(*self.band_high_hz), 0.49 * self.sample_rate))
        if chance(self.resample_prob):
            which = int(torch.randint(len(self.resample_rates), (), generator=generator))
            wav = resample_through(wav, self.sample_rate, self.resample_rates[which])
        if chance(self.dc_prob):
            peak = float(wav.abs().max())
            wav = add_dc_offset(wav, draw(-self.dc_max, self.dc_max) * max(peak, 1e-6))
        if self.peak_db is not None:
            wav = set_peak_db(wav, draw(*self.peak_db))
        return wav


_PAIRS = ("peak_db", "speed_range", "band_low_hz", "band_high_hz", "reverb_rt60",
          "reverb_drr_db")
_POSITIVE_PAIRS = ("speed_range", "band_low_hz", "band_high_hz", "reverb_rt60")
_PROBS = ("speed_prob", "dc_prob", "resample_prob", "band_prob", "reverb_prob")


def build_augment(spec: dict[str, Any] | None, sample_rate: int,
                  where: str = "data.augment") -> WaveAugment | None:
    """A :class:`WaveAugment` from its config mapping (None or ``{}``: no augmentation).

    Raises:
        ConfigError: naming ``where.KEY`` for an unknown key, a probability outside [0, 1],
            a range that is not ``[low, high]`` with ``low <= high``, or a non-positive
            frequency, RT60 or rate.
    """
    if not spec:
        return None
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping such as {{peak_db: [-50, 0]}}, "
                          f"got {spec!r}")
    known = {f.name for f in fields(WaveAugment)} - {"sample_rate"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key; choose from "
                          f"{', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for key, value in spec.items():
        name = f"{where}.{key}"
        if key == "peak_db" and value is None:
            values[key] = None
        elif key in _PAIRS:
            values[key] = _pair(value, name)
            if key in _POSITIVE_PAIRS and values[key][0] <= 0:
                raise ConfigError(f"{name}: values must be > 0, got {value!r}")
        elif key in _PROBS:
            values[key] = _number(value, name)
            if not 0.0 <= values[key] <= 1.0:
                raise ConfigError(f"{name}: a probability must lie in [0, 1], got {value!r}")
        elif key == "dc_max":
            values[key] = abs(_number(value, name))
        elif key == "shift_max":
            values[key] = _number(value, name)
            if values[key] < 0:
                raise ConfigError(f"{name}: a time shift in seconds must be >= 0, got {value!r}")
        else:  # resample_rates
            values[key] = _rates(value, name)
    return WaveAugment(sample_rate=int(sample_rate), **values)


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    return float(value)


def _pair(value: Any, key: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"{key}: expected [low, high], got {value!r}")
    low, high = (_number(v, key) for v in value)
    if low > high:
        raise ConfigError(f"{key}: expected [low, high] with low <= high, got {value!r}")
    return low, high


def _rates(value: Any, key: str) -> tuple[int, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ConfigError(f"{key}: expected a non-empty list of sample rates, got {value!r}")
    rates = tuple(int(_number(v, key)) for v in value)
    if min(rates) <= 0:
        raise ConfigError(f"{key}: sample rates must be > 0, got {list(value)}")
    return rates
