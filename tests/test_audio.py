import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as taf

from audionets import audio
from audionets.errors import AudioError, OutputError

RATE = 8000


def _tone(channels: int = 2, frames: int = 4000) -> torch.Tensor:
    t = torch.arange(frames) / RATE
    freqs = torch.tensor([220.0, 330.0, 440.0, 550.0][:channels]).unsqueeze(1)
    return 0.5 * torch.sin(2 * math.pi * freqs * t)


# (suffix, subtype, max abs error of a round trip)
LOSSLESS = [
    (".wav", "PCM_16", 1 / 2**15),
    (".wav", "PCM_24", 1 / 2**23),
    (".wav", "PCM_32", 1e-7),
    (".wav", "FLOAT", 0.0),
    (".wav", "DOUBLE", 0.0),
    (".flac", "PCM_16", 1 / 2**15),
    (".flac", "PCM_24", 1 / 2**23),
]


@pytest.mark.parametrize("suffix,subtype,tol", LOSSLESS)
def test_round_trip_lossless(tmp_path, suffix, subtype, tol):
    wav = _tone(2)
    path = tmp_path / f"x{suffix}"
    audio.save(path, wav, RATE, subtype=subtype)
    back, rate = audio.load(path)
    assert rate == RATE and back.dtype == torch.float32 and back.shape == wav.shape
    assert (back - wav).abs().max().item() <= tol + 1e-9
    meta = audio.info(path)
    assert (meta.sample_rate, meta.num_channels, meta.num_frames) == (RATE, 2, wav.shape[1])
    assert meta.subtype == subtype and meta.duration == pytest.approx(wav.shape[1] / RATE)


def test_round_trip_ogg_vorbis_is_close(tmp_path):
    wav = _tone(1, 8000)
    path = tmp_path / "x.ogg"
    audio.save(path, wav, RATE)
    back, _ = audio.load(path)
    assert back.shape == wav.shape
    snr = 10 * torch.log10(wav.pow(2).sum() / (back - wav).pow(2).sum())
    assert snr > 15  # lossy codec: waveform close, not equal
    assert audio.info(path).format == "OGG"


def test_default_subtype_is_pcm16_and_clips(tmp_path):
    wav = torch.tensor([[0.0, 1.5, -2.0, 0.25]])
    audio.save(tmp_path / "x.wav", wav, RATE)
    assert audio.info(tmp_path / "x.wav").subtype == "PCM_16"
    back, _ = audio.load(tmp_path / "x.wav")
    assert back.max() <= 1.0 and back.min() == -1.0
    audio.save(tmp_path / "f.wav", wav, RATE, subtype="FLOAT")  # float keeps values > 1
    assert torch.equal(audio.load(tmp_path / "f.wav")[0], wav)


def test_save_1d_and_multichannel_layout(tmp_path):
    wav = _tone(4, 1000)
    audio.save(tmp_path / "m.wav", wav, RATE, subtype="FLOAT")
    data, _ = sf.read(tmp_path / "m.wav", dtype="float32")
    np.testing.assert_array_equal(data, wav.numpy().T)  # channels really are channels
    audio.save(tmp_path / "one.wav", wav[0], RATE, subtype="FLOAT")
    assert audio.load(tmp_path / "one.wav")[0].shape == (1, 1000)


def test_mono_downmix_is_channel_mean(tmp_path):
    wav = _tone(3)
    audio.save(tmp_path / "x.wav", wav, RATE, subtype="FLOAT")
    mono, _ = audio.load(tmp_path / "x.wav", mono=True)
    assert mono.shape == (1, wav.shape[1])
    torch.testing.assert_close(mono, wav.mean(0, keepdim=True))


def test_load_resamples_like_torchaudio(tmp_path):
    wav = _tone(2)
    audio.save(tmp_path / "x.wav", wav, RATE, subtype="FLOAT")
    out, rate = audio.load(tmp_path / "x.wav", sample_rate=16000)
    assert rate == 16000
    torch.testing.assert_close(out, taf.resample(wav, RATE, 16000))
    same, rate = audio.load(tmp_path / "x.wav", sample_rate=RATE)
    assert rate == RATE and torch.equal(same, wav)


def test_resample_wrapper():
    wav = torch.randn(2, 3, 800)
    assert audio.resample(wav, 8000, 8000) is wav
    torch.testing.assert_close(audio.resample(wav, 8000, 16000), taf.resample(wav, 8000, 16000))
    assert audio.resample(wav, 16000, 8000).shape == (2, 3, 400)


def test_stream_blocks_match_load(tmp_path):
    wav = _tone(2, 1000)
    audio.save(tmp_path / "x.wav", wav, RATE, subtype="FLOAT")
    blocks = list(audio.stream(tmp_path / "x.wav", block_frames=300))
    assert [b.shape[1] for b in blocks] == [300, 300, 300, 100]
    torch.testing.assert_close(torch.cat(blocks, dim=1), wav)
    over = list(audio.stream(tmp_path / "x.wav", block_frames=400, overlap=100))
    assert [b.shape[1] for b in over] == [400, 400, 400]
    torch.testing.assert_close(over[1], wav[:, 300:700])
    mono = next(audio.stream(tmp_path / "x.wav", block_frames=10, mono=True))
    torch.testing.assert_close(mono, wav[:, :10].mean(0, keepdim=True))
    with pytest.raises(ValueError):
        next(audio.stream(tmp_path / "x.wav", block_frames=10, overlap=10))


class Boom(Exception):
    pass


def test_atomic_save_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "x.wav"
    audio.save(target, _tone(1), RATE)
    before = target.read_bytes()
    real_write = sf.write

    def failing_write(file, *args, **kwargs):
        real_write(file, *args, **kwargs)  # a partial file exists when the error hits
        raise Boom("disk gone mid-write")

    monkeypatch.setattr(sf, "write", failing_write)
    with pytest.raises(Boom):
        audio.save(target, torch.zeros(1, 10), RATE)
    with pytest.raises(Boom):
        audio.save(tmp_path / "new.wav", torch.zeros(1, 10), RATE)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav"]


def test_save_errors(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        audio.save(tmp_path / "missing" / "x.wav", torch.zeros(1, 10), RATE)
    with pytest.raises(OutputError, match="unsupported audio suffix"):
        audio.save(tmp_path / "x.mp3", torch.zeros(1, 10), RATE)
    with pytest.raises(OutputError, match="cannot store subtype"):
        audio.save(tmp_path / "x.flac", torch.zeros(1, 10), RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or Inf"):
        audio.save(tmp_path / "x.wav", torch.tensor([0.0, float("nan")]), RATE)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_save_unwritable_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            audio.save(folder / "x.wav", torch.zeros(1, 10), RATE)
    finally:
        folder.chmod(0o700)


def _deny(monkeypatch, denied: Path, mode: int) -> None:
    """``os.access`` says no to ``mode`` on ``denied``: the permission paths, also as root."""
    real = os.access

    def access(path, wanted, *args, **kwargs):
        if Path(path).resolve() == denied.resolve() and wanted & mode:
            return False
        return real(path, wanted, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


def test_save_unwritable_folder_as_any_user(tmp_path, monkeypatch):
    _deny(monkeypatch, tmp_path, os.W_OK)
    with pytest.raises(OutputError, match="not writable"):
        audio.save(tmp_path / "x.wav", torch.zeros(1, 10), RATE)
    assert list(tmp_path.iterdir()) == []


def test_no_read_permission_as_any_user(tmp_path, monkeypatch):
    path = tmp_path / "x.wav"
    audio.save(path, _tone(1), RATE)
    _deny(monkeypatch, path, os.R_OK)
    with pytest.raises(AudioError, match="no read permission"):
        audio.load(path)


def _write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("reader", [audio.load, audio.info, lambda p: next(audio.stream(p, 10))])
def test_read_errors(tmp_path, reader):
    cases = {
        "does not exist": tmp_path / "nope.wav",
        "is a directory": tmp_path,
        "zero-byte file": _write_bytes(tmp_path / "empty.wav", b""),
        "not a readable audio file": _write_bytes(tmp_path / "noise.wav", os.urandom(2048)),
    }
    text = tmp_path / "text.flac"
    text.write_text("this is not audio\n")
    cases["not a readable audio file (corrupt or unsupported format)"] = text
    for message, path in cases.items():
        with pytest.raises(AudioError, match=re.escape(message)) as err:
            reader(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("suffix,subtype", [(".wav", "PCM_16"), (".wav", "FLOAT"),
                                            (".flac", "PCM_16"), (".ogg", "VORBIS")])
def test_truncated_files(tmp_path, suffix, subtype):
    path = tmp_path / f"x{suffix}"
    audio.save(path, _tone(2, 8000), RATE, subtype=subtype)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated") as err:
        audio.load(path)
    assert str(path) in str(err.value)


def test_zero_samples(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, np.zeros((0, 1), dtype="float32"), RATE)
    assert path.stat().st_size > 0
    with pytest.raises(AudioError, match="zero samples"):
        audio.load(path)
    with pytest.raises(AudioError, match="zero samples"):
        audio.info(path)


def test_nan_and_inf_report_time(tmp_path):
    data = np.zeros((RATE * 2, 2), dtype="float32")
    data[12000, 1] = np.nan
    sf.write(tmp_path / "nan.wav", data, RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"NaN or Inf samples at t=1\.500s"):
        audio.load(tmp_path / "nan.wav")
    with pytest.raises(AudioError, match=r"t=1\.500s"):
        list(audio.stream(tmp_path / "nan.wav", block_frames=5000))
    data[:] = 0
    data[4, 0] = np.inf
    sf.write(tmp_path / "inf.wav", data, RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"t=0\.001s"):
        audio.load(tmp_path / "inf.wav")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files with mode 000")
def test_no_read_permission(tmp_path):
    path = tmp_path / "x.wav"
    audio.save(path, _tone(1), RATE)
    path.chmod(0)
    try:
        with pytest.raises(AudioError, match="no read permission"):
            audio.load(path)
    finally:
        path.chmod(0o600)
