"""``Separator``: speech separation of tensors and (arbitrarily long) audio files.

::

    from audionets import Separator
    sep = Separator.from_pretrained("sudormrf-tts-2spk")
    est = sep.separate_batch(mix)                 # [B, T] at sep.sample_rate -> [B, T, S]
    paths = sep.separate_file("meeting.flac")     # -> [meeting_s1.wav, meeting_s2.wav]

Files of any length are processed in overlapping chunks streamed from disk (see
:mod:`audionets.inference.chunking`), so memory stays bounded; outputs are written block by
block to temporary files and renamed at the end (see :mod:`audionets.inference.outputs`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from audionets import audio
from audionets.errors import AudioError, ConfigError, OutputError
from audionets.inference import chunking, outputs
from audionets.inference._common import (
    check_batch,
    check_outputs,
    is_exported_model,
    load_checked,
)
from audionets.tasks import SeparationTask
from audionets.utils import prepare_out_dir, progress_bar, resolve_device

#: Shipped model used when no model is named.
DEFAULT_SEPARATOR = "sudormrf-tts-2spk"
#: Chunk lengths (seconds) separate_file / separate_long accept: shorter chunks would take
#: hours of per-chunk overhead (0.0001 s: 878 samples in 120 s), longer ones unbounded memory.
MIN_CHUNK_SECONDS, MAX_CHUNK_SECONDS = 0.25, 3600.0


class Separator:
    """A separation model ready for inference.

    Args:
        model: a module mapping ``mix [B, T] -> sources [B, S, T]`` with attribute
            ``num_sources`` (e.g. ``MODELS.build("sepformer", ...)``).
        sample_rate: the rate the model expects, in Hz.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        chunk_seconds: default chunk length for :meth:`separate_file`.
        overlap_seconds: default overlap between chunks for :meth:`separate_file`.
        source: where the model came from (for messages).
        config: the model's training config (``from_pretrained`` fills it in), or None.
        rescale: scale each estimate to the mixture (:func:`fit_to_mixture`): models trained
            with a scale-invariant loss (SI-SNR) return sources at an arbitrary level, often
            louder than the mixture (peaks of 2-3 for a mixture peaking at 0.9). False keeps
            the model's raw output.
        shifts: average the estimates of this many passes, over the input delayed by
            ``k * hop // shifts`` samples (``k = 0 .. shifts - 1``; ``hop``: the model's
            encoder hop, :func:`encoder_hop`). An encoder with a hop sees each sample at one
            phase of its frames; the passes see the others, and their errors partly cancel
            (the shipped SuDoRM-RF: +0.24 dB SI-SNRi on held-out voices for 2, +0.31 for 4).
            Costs ``shifts`` times the compute; 1 (the default) is one plain pass.

    The model runs as given; :meth:`from_pretrained` on CPU also pre-packs its linear weights
    (``audionets.nn.prepack.prepack_linear_layers(model)`` does the same for a model of yours).
    """

    def __init__(
        self,
        model: nn.Module,
        sample_rate: int,
        device: str | torch.device = "cpu",
        chunk_seconds: float = 10.0,
        overlap_seconds: float = 1.0,
        source: str | None = None,
        config: dict | None = None,
        rescale: bool = True,
        shifts: int = 1,
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.sample_rate = int(sample_rate)
        self.num_sources = int(model.num_sources)
        self.chunk_seconds = float(chunk_seconds)
        self.overlap_seconds = float(overlap_seconds)
        self.source = source
        self.config = config
        self.rescale = bool(rescale)
        self.offsets = shift_offsets(shifts, model, config)

    @classmethod
    def from_pretrained(
        cls, source: str | os.PathLike = DEFAULT_SEPARATOR, device: str | torch.device = "cpu",
        quantize: str | None = None, **kwargs,
    ) -> "Separator":
        """Load a separation model by shipped name, folder, experiment dir, SpeechBrain folder
        or hub id (see :func:`audionets.hub.load_model`), or an exported ONNX / TorchScript
        folder (``audionets export --format onnx``; ONNX runs with onnxruntime on the CPU).

        On CPU the model's linear layers get oneDNN pre-packed weights
        (:func:`~audionets.nn.prepack.prepack_linear_layers`: same outputs, about 1.2x faster).
        ``quantize="int8"`` applies dynamic int8 quantization to the linear / LSTM layers
        instead (CPU only; about 2-3x faster transformer layers, slightly lower SI-SNR).
        Raises :class:`~audionets.errors.CheckpointError` for a missing, unsafe or mismatched
        model and for a model of another task. ``kwargs`` go to the constructor.
        """
        if quantize not in (None, "int8"):
            raise ConfigError(f"unknown quantization {quantize!r}; use int8 or leave it out")
        device = resolve_device(device)  # "auto", or a one-line error before any loading
        if quantize and device.type != "cpu":
            raise ConfigError("int8 quantization runs on CPU only; use device cpu")
        model, meta = load_checked(source, device="cpu" if quantize else device,
                                   task=SeparationTask.name)
        if is_exported_model(model):  # an exported model runs as it was exported
            if quantize:
                raise ConfigError(f"{source}: is an exported model; int8 applies to PyTorch "
                                  "models (export with --precision int8 for ONNX)")
        elif quantize:
            from audionets.nn.quantization import quantize_dynamic_int8

            model = quantize_dynamic_int8(model)
        else:  # packs the linear layers of a model loaded on the CPU, leaves others as they are
            from audionets.nn.prepack import prepack_linear_layers

            model = prepack_linear_layers(model)
        return cls(model, meta.sample_rate, device=device, source=str(source),
                   config=meta.config, **kwargs)

    def __repr__(self) -> str:
        return (f"Separator(source={self.source!r}, sample_rate={self.sample_rate}, "
                f"num_sources={self.num_sources}, device={str(self.device)!r})")

    # -- tensors -----------------------------------------------------------------------------

    def _forward(self, mix: torch.Tensor) -> torch.Tensor:
        """``[B, T] -> [B, S, T]``: the model's estimates (averaged over :attr:`offsets`),
        rescaled, float32 on the CPU; no input checks."""
        with torch.inference_mode():
            est = self._pass(mix, self.offsets[0])
            for offset in self.offsets[1:]:  # each pass lined up with the sum so far, added
                shifted = self._pass(mix, offset)
                est += chunking.reorder_sources(shifted, *chunking.match_sources(est, shifted))
            est /= len(self.offsets)
        return fit_to_mixture(est, mix.float().cpu()) if self.rescale else est

    def _pass(self, mix: torch.Tensor, offset: int) -> torch.Tensor:
        """One model pass over ``mix [B, T]`` delayed by ``offset`` zeros: ``[B, S, T]``
        aligned with ``mix``, float32 on the CPU."""
        length = mix.shape[-1]
        est = self.model(torch.nn.functional.pad(mix.to(self.device), (offset, 0)))
        if est.dim() != 3 or est.shape[1] != self.num_sources:
            raise RuntimeError(f"model returned shape {tuple(est.shape)}, expected [B, S, T]")
        est = est[..., offset:offset + length]
        if est.shape[-1] != length:  # guard models that do not keep the length themselves
            est = torch.nn.functional.pad(est, (0, length - est.shape[-1]))
        return check_outputs(est.float().cpu(), self.source)

    def separate_batch(self, mix: torch.Tensor) -> torch.Tensor:
        """Separate a batch ``mix [B, T]`` sampled at :attr:`sample_rate` in one pass (``shifts``
        passes when more were asked for).

        Returns ``[B, T, S]`` (SpeechBrain's convention), float32 on the CPU. No resampling
        and no chunking happen here: use :meth:`separate_file` for files and long inputs.
        Raises :class:`~audionets.errors.AudioError` for a wrong shape or NaN/Inf samples.
        """
        mix = check_batch(mix, "mix")
        return self._forward(mix).transpose(1, 2)

    def separate_long(
        self, mix: torch.Tensor, chunk_seconds: float | None = None,
        overlap_seconds: float | None = None,
    ) -> torch.Tensor:
        """Chunked version of :meth:`separate_batch` for long in-memory ``mix [B, T]``.

        Same chunking, re-ordering and overlap-add as :meth:`separate_file`; ``[B, T, S]``.
        """
        mix = check_batch(mix, "mix")
        chunk, overlap = self._chunk_sizes(self.sample_rate, chunk_seconds, overlap_seconds)
        return chunking.separate_chunked(
            lambda piece: self._separate_chunk(piece, self.sample_rate), mix, chunk, overlap
        ).transpose(1, 2)

    # -- files -------------------------------------------------------------------------------

    def _chunk_sizes(
        self, rate: int, chunk_seconds: float | None, overlap_seconds: float | None
    ) -> tuple[int, int]:
        if chunk_seconds is None:
            chunk_seconds = self.chunk_seconds
        if overlap_seconds is None:
            overlap_seconds = self.overlap_seconds
        chunk_seconds, overlap_seconds = check_chunking(chunk_seconds, overlap_seconds)
        chunk = max(1, round(chunk_seconds * rate))
        return chunk, min(max(1, round(overlap_seconds * rate)), chunk // 2)

    def _separate_chunk(self, chunk: torch.Tensor, rate: int) -> torch.Tensor:
        """``[B, n]`` at ``rate`` -> ``[B, S, n]`` at ``rate`` (resampled around the model).

        An all-zero chunk gives all-zero sources without running the model.
        """
        length = chunk.shape[-1]
        if not chunk.any():
            return torch.zeros(chunk.shape[0], self.num_sources, length)
        est = self._forward(audio.resample(chunk, rate, self.sample_rate))
        est = audio.resample(est, self.sample_rate, rate)
        if est.shape[-1] < length:
            est = torch.nn.functional.pad(est, (0, length - est.shape[-1]))
        return est[..., :length]

    def separate_file(
        self,
        path: str | os.PathLike,
        out_dir: str | os.PathLike | None = None,
        chunk_seconds: float | None = None,
        overwrite: bool = False,
        channels: str = "mix",
        progress: bool | Callable[[int, int], None] = True,
        overlap_seconds: float | None = None,
        protected: tuple[str | os.PathLike, ...] = (),
    ) -> list[Path]:
        """Separate an audio file of any length into one WAV file per source.

        Args:
            path: a WAV / FLAC / OGG file at any rate, any number of channels.
            out_dir: folder for the outputs (created if missing); default: the input's folder.
            chunk_seconds: chunk length (default ``self.chunk_seconds``, 10 s). Inputs up to
                one chunk are separated in a single pass.
            overwrite: replace existing outputs (never the input itself).
            channels: ``"mix"`` averages the channels and writes ``<stem>_s{k}.wav``;
                ``"each"`` separates every channel on its own and writes
                ``<stem>_ch{c}_s{k}.wav`` (both counts from 1).
            progress: show a progress bar (stderr) when there is more than one chunk; a
                callable is called as ``progress(done, total)`` after each chunk instead.
            overlap_seconds: overlap between chunks (default ``self.overlap_seconds``, 1 s;
                at most half a chunk).
            protected: other paths that must not be overwritten (the CLI's other inputs).

        Returns:
            The written paths: 32-bit float WAV at the input's sample rate, exactly as many
            samples as the input (the model runs at :attr:`sample_rate`; chunks are resampled
            on the way in and out).

        An all-zero (silent) input gives all-zero outputs and a ``UserWarning``. Raises
        :class:`~audionets.errors.AudioError` for unreadable, corrupt, truncated or NaN/Inf
        input and :class:`~audionets.errors.OutputError` for outputs that exist (without
        ``overwrite``), would replace the input, or cannot be written. On any error no output
        file of this input is left behind.
        """
        path = Path(path)
        each = _check_channels(channels)
        meta = audio.info(path)
        rate = meta.sample_rate
        chunk, overlap = self._chunk_sizes(rate, chunk_seconds, overlap_seconds)
        folder = prepare_out_dir(out_dir if out_dir is not None else path.parent)
        names = outputs.separation_names(
            path.stem, self.num_sources, meta.num_channels if each else None
        )
        targets = outputs.plan_outputs(path, folder, names, overwrite, protected)
        spans = chunking.plan_chunks(meta.num_frames, chunk, overlap)
        heard = False

        def estimates() -> Iterator[torch.Tensor]:
            nonlocal heard
            blocks = audio.stream(path, block_frames=max(chunk - overlap, 1), mono=not each)
            for piece in chunking.iter_chunks(blocks, spans, name=str(path)):
                heard = heard or bool(piece.any())
                yield self._separate_chunk(piece, rate)

        with outputs.OutputSet(targets) as outs:
            writers: list = []
            try:
                for i in range(len(targets)):
                    writers.append(_open_writer(outs.temp(i), rate))
                show = progress if callable(progress) else progress and len(spans) > 1
                bar = progress_bar(len(spans), path.name, show)
                for block in chunking.stitch(estimates(), spans, overlap):
                    _write_block(writers, block, targets[0].parent)
                    bar.update(1)
                bar.close()
            except EOFError as err:
                raise AudioError(f"{err}; the file is truncated or changed while reading") from None
            finally:
                for writer in writers:
                    writer.close()
        if not heard:
            warnings.warn(f"{path}: input is silent (all samples are zero); wrote silent outputs",
                          UserWarning, stacklevel=2)
        return targets


def encoder_hop(model: nn.Module, config: dict | None = None) -> int | None:
    """Samples between the encoder frames of a separation model (its ``hop_length``), or
    None if it has none. An exported model (ONNX, TorchScript) has the one of the
    architecture in its ``config``."""
    hop = getattr(model, "hop_length", None)
    if hop is None and is_exported_model(model) and config is not None:
        from audionets.hub import build_from_config

        hop = getattr(build_from_config(config, "the exported model's config"), "hop_length", None)
    return None if hop is None else int(hop)


def shift_offsets(shifts: int, model: nn.Module, config: dict | None = None) -> list[int]:
    """The delays (samples) of the ``shifts`` passes :class:`Separator` averages: spread
    evenly over the model's encoder hop (``[0]`` for one pass, whatever the model).
    ConfigError naming ``shifts`` for a count that is not from 1 to the hop, or for more than
    one pass of a model without a hop."""
    if isinstance(shifts, bool) or not isinstance(shifts, int) or shifts < 1:
        raise ConfigError(f"shifts must be a whole number >= 1; got {shifts!r}")
    if shifts == 1:
        return [0]
    hop = encoder_hop(model, config)
    if hop is None:
        raise ConfigError(f"shifts={shifts} needs a model with an encoder hop (hop_length); "
                          f"{type(model).__name__} has none: use shifts=1")
    if shifts > hop:
        raise ConfigError(f"shifts must be from 1 to the model's encoder hop ({hop}); "
                          f"got {shifts}")
    return [k * hop // shifts for k in range(shifts)]


def fit_to_mixture(estimates: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    """Scale each source estimate to its share of the mixture: ``[B, S, T], [B, T] -> [B, S, T]``.

    Each estimate ``e`` becomes the projection of the mixture on it, ``(<e, mix> / <e, e>) e``:
    the least-squares gain of that source alone. When the sources are separated, ``<e, mix>``
    is ``<e, source>`` (the other sources are nearly orthogonal to it), so the gain undoes the
    arbitrary scale (and sign) a scale-invariant model (SI-SNR) outputs, and the estimates sum
    to about the mixture at its level. The output's energy never exceeds the mixture's, a
    silent estimate stays silent, and the SI-SNR of a source does not change.
    """
    est = estimates.double()
    energy = est.pow(2).sum(-1, keepdim=True)  # [B, S, 1]
    gains = (est * mix.double().unsqueeze(1)).sum(-1, keepdim=True) / energy.clamp_min(1e-20)
    return (est * gains).to(estimates.dtype)


def check_chunking(chunk_seconds: float, overlap_seconds: float, chunk_key: str = "chunk_seconds",
                   overlap_key: str = "overlap_seconds") -> tuple[float, float]:
    """Both as floats; ConfigError naming the key when the chunk is outside
    [:data:`MIN_CHUNK_SECONDS`, :data:`MAX_CHUNK_SECONDS`] or the overlap not in (0, that max]."""
    chunk_seconds, overlap_seconds = float(chunk_seconds), float(overlap_seconds)
    if not MIN_CHUNK_SECONDS <= chunk_seconds <= MAX_CHUNK_SECONDS:
        raise ConfigError(f"{chunk_key} must be from {MIN_CHUNK_SECONDS:g} to "
                          f"{MAX_CHUNK_SECONDS:g}; got {chunk_seconds}")
    if not 0 < overlap_seconds <= MAX_CHUNK_SECONDS:
        raise ConfigError(
            f"{overlap_key} must be > 0 (the sources of consecutive chunks are matched over "
            f"their overlap) and at most {MAX_CHUNK_SECONDS:g}; got {overlap_seconds}"
        )
    return chunk_seconds, overlap_seconds


def _check_channels(channels: str) -> bool:
    """True for ``"each"``, False for ``"mix"``; ConfigError otherwise."""
    if channels not in ("mix", "each"):
        raise ConfigError(f"channels must be 'mix' or 'each'; got {channels!r}")
    return channels == "each"


def _open_writer(tmp: Path, rate: int):
    """A 32-bit float mono WAV writer on ``tmp`` (float keeps estimates above 1.0 unclipped)."""
    import soundfile as sf

    try:
        return sf.SoundFile(os.fsencode(tmp), "w", samplerate=rate, channels=1, format="WAV",
                            subtype="FLOAT")
    except (OSError, sf.SoundFileError) as err:
        raise OutputError(f"{tmp.parent}: cannot write the outputs: {err}") from None


def _write_block(writers: list, block: torch.Tensor, folder: Path) -> None:
    """Append ``block [streams, S, n]`` to the writers (one per stream and source, in order)."""
    import soundfile as sf

    flat = block.reshape(-1, block.shape[-1]).numpy()
    try:
        for writer, samples in zip(writers, flat):
            writer.write(samples)
    except (OSError, sf.SoundFileError) as err:
        raise OutputError(f"{folder}: cannot write the outputs: {err}") from None
