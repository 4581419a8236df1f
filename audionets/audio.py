"""Audio file I/O (soundfile) and resampling (torchaudio), with one-line errors.

Every waveform this module returns is a float32 tensor ``[channels, time]`` in [-1, 1] for
integer files (float files are returned as stored). Reading validates the file and raises
:class:`~audionets.errors.AudioError` with one line naming the file and the problem: missing,
a directory, unreadable, empty, not audio / corrupt, truncated, zero samples, NaN/Inf samples.

Writing goes through :func:`audionets.utils.atomic_write` (temporary file in the same folder,
fsync, rename), so an interrupted :func:`save` never leaves a half-written file behind.

Default subtypes when saving: ``PCM_16`` for ``.wav`` and ``.flac`` (what most tools write),
``VORBIS`` for ``.ogg``. Pass ``subtype="FLOAT"`` to keep float32 samples unclipped in WAV.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as taf

from audionets.errors import AudioError, OutputError
from audionets.utils import atomic_write

PathLike = str | os.PathLike

#: Sample rates (Hz) a model, a dataset or a written file may have: outside them a rate is a
#: typo or an attack (99999999999 Hz would ask terabytes for a second of audio).
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
#: Container format (soundfile name) for each file suffix :func:`save` accepts.
FORMATS: dict[str, str] = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
#: Subtype :func:`save` writes when none is given.
DEFAULT_SUBTYPES: dict[str, str] = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}

# libsndfile logs "data : <declared> (should be <available>)" when a WAV/AIFF data chunk is
# longer than the file, and "ended unexpectedly" for a cut Ogg stream; it then silently
# shortens the file, so the log is the only trace of a truncation.
_SHORT_CHUNK = re.compile(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_STREAMED_SIZES = {0, 0xFFFFFFFF, 0xFFFFFFFF - 8}  # placeholders of writers that stream


def check_sample_rate(rate: object, key: str) -> int:
    """``rate`` as an int; ConfigError naming ``key`` unless it is a whole number of Hz from
    :data:`MIN_SAMPLE_RATE` to :data:`MAX_SAMPLE_RATE`."""
    from audionets.errors import ConfigError

    if isinstance(rate, bool) or not isinstance(rate, int) or not (
            MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE):
        raise ConfigError(f"{key}: must be a whole number of Hz from {MIN_SAMPLE_RATE} to "
                          f"{MAX_SAMPLE_RATE}, got {rate!r}")
    return rate


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`info` reports about a file without reading its samples."""

    sample_rate: int
    num_channels: int
    num_frames: int
    duration: float  # seconds
    format: str  # soundfile's container name, e.g. "WAV"
    subtype: str  # soundfile's sample encoding, e.g. "PCM_16"


def _check_path(path: Path) -> None:
    """Raise AudioError when ``path`` is not a non-empty, readable regular file."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise AudioError(f"{path}: symbolic link loop; fix or remove the link") from None
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            raise AudioError(f"{path}: file does not exist; check the path") from None
        raise AudioError(f"{path}: cannot read it ({err.strerror}); check the path") from None
    if stat.S_ISDIR(mode):
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not stat.S_ISREG(mode):
        raise AudioError(f"{path}: not a regular file (a pipe, device or socket); pass an audio "
                         "file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: no read permission; fix the file's permissions")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: zero-byte file; re-create or re-download it")


def _open(path: Path) -> sf.SoundFile:
    """Open ``path`` for reading, turning every soundfile failure into AudioError."""
    _check_path(path)
    try:
        # the name as bytes: soundfile cannot encode a str name that is not valid UTF-8
        handle = sf.SoundFile(os.fsencode(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        reason = str(err).split(": ", 1)[-1].strip() if str(err).startswith("Error opening") \
            else str(err).strip()
        raise AudioError(
            f"{path}: not a readable audio file (corrupt or unsupported format): {reason}"
        ) from None
    try:
        _check_header(path, handle)
    except AudioError:
        handle.close()
        raise
    return handle


def _check_header(path: Path, handle: sf.SoundFile) -> None:
    log = handle.extra_info
    for declared, available in _SHORT_CHUNK.findall(log):
        if int(declared) > int(available) and int(declared) not in _STREAMED_SIZES:
            raise AudioError(
                f"{path}: truncated file (header declares {declared} data bytes, "
                f"{available} present); re-create or re-download it"
            )
    if "ended unexpectedly" in log:
        raise AudioError(f"{path}: truncated file (stream ends early); re-create or re-download it")
    if handle.frames == 0:
        raise AudioError(f"{path}: contains zero samples")


def _check_finite(path: Path, data: np.ndarray, sample_rate: int, offset: int = 0) -> None:
    """Raise AudioError at the first NaN/Inf of ``data`` ``[frames, channels]``."""
    finite = np.isfinite(data)
    if not finite.all():
        frame = int(np.argmin(finite.all(axis=1))) + offset
        raise AudioError(
            f"{path}: contains NaN or Inf samples at t={frame / sample_rate:.3f}s; "
            "repair or drop the file"
        )


def _read(path: Path, handle: sf.SoundFile, start: int, frames: int = -1) -> np.ndarray:
    """Read ``frames`` frames (all that are left for -1) at ``start``, the position the caller
    has reached: asking the file for its position would seek, which GSM 6.10 and G.721 WAVs
    cannot do."""
    wanted = handle.frames - start if frames < 0 else min(frames, handle.frames - start)
    try:  # a count, not -1: soundfile seeks to find the rest of a file
        data = handle.read(wanted, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"{path}: truncated or corrupt audio data: {err}") from None
    if data.shape[0] < wanted:
        raise AudioError(
            f"{path}: truncated file (read {start + data.shape[0]} of {handle.frames} frames); "
            "re-create or re-download it"
        )
    return data


def _reads_whole(handle: sf.SoundFile) -> bool:
    """Whether blocks of this file must be cut from one whole read: libsndfile's MP3 decoder
    returns other samples when a file is read in blocks (up to 0.5 off at 22.05 kHz)."""
    return str(handle.format) == "MP3"


def info(path: PathLike) -> AudioInfo:
    """Describe ``path`` (rate, channels, frames, duration, format) without reading samples.

    Raises AudioError for the same problems as :func:`load` except NaN/Inf samples.
    """
    path = Path(path)
    with _open(path) as handle:
        return AudioInfo(
            sample_rate=int(handle.samplerate),
            num_channels=int(handle.channels),
            num_frames=int(handle.frames),
            duration=handle.frames / handle.samplerate,
            format=str(handle.format),
            subtype=str(handle.subtype),
        )


def load(
    path: PathLike, sample_rate: int | None = None, mono: bool = False
) -> tuple[torch.Tensor, int]:
    """Read an audio file as float32 ``[channels, time]`` and its sample rate.

    Args:
        path: a WAV, FLAC or OGG file (any subtype libsndfile reads).
        sample_rate: resample to this rate when given and different from the file's.
        mono: average the channels into ``[1, time]``.

    Returns:
        ``(wav, rate)`` where ``rate`` is ``sample_rate`` if given, else the file's rate.
    """
    path = Path(path)
    with _open(path) as handle:
        rate = int(handle.samplerate)
        data = _read(path, handle, 0)
    _check_finite(path, data, rate)
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    if mono:
        wav = wav.mean(dim=0, keepdim=True)
    if sample_rate is not None and sample_rate != rate:
        wav = resample(wav, rate, sample_rate)
        rate = int(sample_rate)
    return wav, rate


def stream(
    path: PathLike, block_frames: int, overlap: int = 0, mono: bool = False
) -> Iterator[torch.Tensor]:
    """Yield consecutive blocks ``[channels, block_frames]`` of ``path`` without loading it all.

    Consecutive blocks share ``overlap`` frames; the last block may be shorter. Each block is
    validated like :func:`load` (NaN/Inf samples raise AudioError with their time). The file
    is read in order, never seeking (GSM 6.10 / G.721 WAVs cannot seek); an MP3 is read whole
    first, because libsndfile decodes MP3 read in blocks differently (memory: 4 bytes per
    sample), so that the blocks always equal the samples :func:`load` returns.
    """
    if block_frames <= 0 or not 0 <= overlap < block_frames:
        raise ValueError(f"need block_frames > 0 and 0 <= overlap < block_frames, "
                         f"got {block_frames}, {overlap}")
    path = Path(path)
    hop = block_frames - overlap
    with _open(path) as handle:
        rate = int(handle.samplerate)
        if _reads_whole(handle):
            whole = _read(path, handle, 0)
            pieces = (whole[max(0, end - hop):end] if end > block_frames else whole[:end]
                      for end in range(block_frames, len(whole) + hop, hop))
        else:
            pieces = _pieces(path, handle, block_frames, hop)
        start, block = 0, None
        for piece in pieces:  # the first block, then the new frames of each next one
            if not len(piece):
                break
            fresh = 0 if block is None else overlap
            _check_finite(path, piece, rate, offset=start + fresh)
            block = piece if block is None else np.concatenate([block[hop:], piece])
            wav = torch.from_numpy(np.ascontiguousarray(block.T))
            yield wav.mean(dim=0, keepdim=True) if mono else wav
            if start + len(block) >= handle.frames:
                break
            start += hop


def _pieces(path: Path, handle: sf.SoundFile, block_frames: int, hop: int) -> Iterator[np.ndarray]:
    """The file read in order, without seeking: ``block_frames`` frames, then ``hop`` at a time."""
    position, size = 0, block_frames
    while position < handle.frames:
        data = _read(path, handle, position, size)
        yield data
        position, size = position + len(data), hop


#: torchaudio's windowed-sinc kernel holds about ``new * (orig + 12 * orig / min(orig, new))``
#: values for the gcd-reduced rates; above this many the rates are replaced by a nearby ratio
MAX_KERNEL_VALUES = 2**22


def _kernel_values(orig: int, new: int) -> int:
    """Values of torchaudio's resampling kernel for gcd-reduced rates (lowpass width 6,
    rolloff 0.99), in the larger of the two directions (so that a rate pair and its inverse
    get the same ratio)."""
    return max(b * (a + 2 * math.ceil(6 * a / (0.99 * min(a, b)))) for a, b in ((orig, new),
                                                                              (new, orig)))


def resample_ratio(orig_sr: int, new_sr: int) -> tuple[int, int]:
    """The ``(orig, new)`` pair :func:`resample` hands torchaudio for ``orig_sr -> new_sr``.

    The gcd-reduced rates themselves when their kernel is small (every common pair: 44100 ->
    8000 is 441 -> 80). For odd rates (22051 Hz has no common factor with 8000) the kernel
    would grow with the product of the rates (gigabytes); the closest ratio ``new / orig``
    whose kernel has at most :data:`MAX_KERNEL_VALUES` values is used instead (a 22051 ->
    8000 Hz file is resampled as 973 -> 353, 4e-7 off). The relative error of the ratio, a
    timing drift of that many seconds per second and a pitch change of ``1731 * error``
    cents, stays below 2.5e-4 (0.4 cent) for any rates, below 1e-4 for 8 and 16 kHz
    targets and 1 kHz to 768 kHz sources; the separator's round trip (to the model's rate and
    back) uses the inverse ratio, so it adds no drift.
    """
    divisor = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // divisor, int(new_sr) // divisor
    if _kernel_values(orig, new) <= MAX_KERNEL_VALUES:
        return orig, new
    # the largest bound on the terms whose closest ratio still has a small kernel
    ratio = Fraction(new, orig)
    inverse = ratio > 1  # approximate orig / new instead: limit_denominator bounds the smaller term

    def closest(limit: int) -> tuple[int, int]:
        close = (1 / ratio if inverse else ratio).limit_denominator(limit)
        terms = (close.numerator, close.denominator) if inverse else (close.denominator,
                                                                       close.numerator)
        return terms[0], max(terms[1], 1)

    low, high = 1, max(orig, new)
    while low < high:
        middle = (low + high + 1) // 2
        if _kernel_values(*closest(middle)) <= MAX_KERNEL_VALUES:
            low = middle
        else:
            high = middle - 1
    return closest(low)


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample ``wav [..., time]`` from ``orig_sr`` to ``new_sr`` (torchaudio's sinc filter).

    Memory and time are linear in the input for any pair of rates (see
    :func:`resample_ratio`); the output has ``ceil(time * new_sr / orig_sr)`` samples. Returns
    ``wav`` itself when the rates are equal.
    """
    if int(orig_sr) == int(new_sr):
        return wav
    orig, new = resample_ratio(orig_sr, new_sr)
    out = taf.resample(wav, orig, new)
    length = math.ceil(wav.shape[-1] * int(new_sr) / int(orig_sr))
    if out.shape[-1] < length:  # a nearby ratio may give a sample less or more
        out = torch.nn.functional.pad(out, (0, length - out.shape[-1]))
    return out[..., :length]


def save(
    path: PathLike, wav: torch.Tensor, rate: int, subtype: str | None = None
) -> None:
    """Write ``wav`` (``[channels, time]`` or ``[time]``) to ``path`` atomically.

    The format follows the suffix (``.wav``, ``.flac``, ``.ogg``); ``subtype`` defaults to
    ``PCM_16`` for WAV and FLAC and ``VORBIS`` for OGG. Samples are clipped to [-1, 1] only for
    integer (``PCM_*``) subtypes. Raises OutputError for a missing or unwritable folder or an
    unsupported suffix/subtype, AudioError for NaN/Inf samples.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(
            f"{path}: unsupported audio suffix {path.suffix!r}; use one of {', '.join(FORMATS)}"
        )
    subtype = (subtype or DEFAULT_SUBTYPES[fmt]).upper()
    if not sf.check_format(fmt, subtype):
        raise OutputError(
            f"{path}: {fmt} cannot store subtype {subtype}; "
            f"choose one of {', '.join(sf.available_subtypes(fmt))}"
        )
    if wav.dim() == 1:
        wav = wav.unsqueeze(0)
    if wav.dim() != 2:
        raise ValueError(f"save expects [channels, time] or [time], got shape {tuple(wav.shape)}")
    data = wav.detach().to("cpu", torch.float64 if subtype == "DOUBLE" else torch.float32)
    data = data.numpy().T
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: refusing to save NaN or Inf samples")
    if subtype.startswith("PCM"):
        data = np.clip(data, -1.0, 1.0)
    try:
        with atomic_write(path) as tmp:
            sf.write(os.fsencode(tmp), data, int(rate), subtype=subtype, format=fmt)
    except OSError as err:
        raise OutputError(f"{path}: cannot write: {err.strerror or err}") from None
    except sf.LibsndfileError as err:
        raise OutputError(f"{path}: cannot write: {err}") from None
