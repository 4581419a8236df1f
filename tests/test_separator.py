"""Separator: batch API, files of any rate / channels / length, chunk continuity, safety."""

import hashlib

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as taf
from torch import nn

import audionets.models  # noqa: F401  (registers the models)
from audionets.errors import AudioError, OutputError
from audionets.inference import Separator
from audionets.inference.separator import fit_to_mixture
from audionets.nn.prepack import prepack_available
from audionets.nn.quantization import int8_quantization_available
from audionets.registry import MODELS

RATE = 8000
TINY = dict(encoder_channels=16, d_model=16, chunk_size=20, num_blocks=1, intra_layers=1,
            inter_layers=1, nhead=2, d_ffn=32)


@pytest.fixture(scope="module")
def separator():
    torch.manual_seed(0)
    return Separator(MODELS.build("sepformer", **TINY), RATE)


def write(path, wav, rate=RATE, subtype="FLOAT"):
    """Write ``wav [C, T]`` (or ``[T]``) as a float WAV and return the path."""
    data = np.asarray(wav, dtype=np.float32)
    sf.write(str(path), data.T if data.ndim == 2 else data, rate, subtype=subtype)
    return path


def read(path):
    data, rate = sf.read(str(path), dtype="float32")
    return torch.from_numpy(data), rate


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_separate_batch_is_the_model_output_fitted_to_the_mixture(separator):
    mix = torch.randn(3, 1234)
    est = separator.separate_batch(mix)
    assert est.shape == (3, 1234, 2) and not est.requires_grad
    with torch.no_grad():
        raw = separator.model(mix)
    torch.testing.assert_close(est, fit_to_mixture(raw, mix).transpose(1, 2))
    raw_sep = Separator(separator.model, RATE, rescale=False)
    torch.testing.assert_close(raw_sep.separate_batch(mix), raw.transpose(1, 2))


def test_fit_to_mixture_restores_the_level_of_scaled_sources():
    """Sources a scale-invariant model returned 2.5x too loud and one with a flipped sign come
    back at the mixture's level, sum to it, and keep their SI-SNR."""
    from audionets.metrics import si_snr

    torch.manual_seed(0)
    t = torch.arange(8000) / RATE
    sources = torch.stack([0.4 * torch.sin(2 * torch.pi * 220 * t),
                           0.3 * torch.sign(torch.sin(2 * torch.pi * 1300 * t))]).unsqueeze(0)
    mix = sources.sum(1)
    noisy = sources + 0.01 * torch.randn_like(sources)
    raw = noisy * torch.tensor([2.5, -3.0]).view(1, 2, 1)
    fitted = fit_to_mixture(raw, mix)
    assert raw.abs().max() > 1.0 and fitted.abs().max() < sources.abs().max() + 0.06
    torch.testing.assert_close(fitted, sources, atol=0.05, rtol=0)
    torch.testing.assert_close(fitted.sum(1), mix, atol=0.08, rtol=0)
    torch.testing.assert_close(si_snr(fitted, sources), si_snr(noisy, sources), atol=1e-4, rtol=0)
    assert torch.equal(fit_to_mixture(torch.zeros(1, 2, 100), torch.randn(1, 100)),
                       torch.zeros(1, 2, 100))  # silence stays silence, no NaN


@pytest.mark.parametrize("bad", [torch.randn(100), torch.randn(1, 2, 100), torch.zeros(2, 0)])
def test_separate_batch_rejects_bad_shapes(separator, bad):
    with pytest.raises(AudioError, match="batch, time"):
        separator.separate_batch(bad)


def test_separate_batch_rejects_nan(separator):
    mix = torch.randn(1, 100)
    mix[0, 5] = float("nan")
    with pytest.raises(AudioError, match="NaN"):
        separator.separate_batch(mix)


def test_short_file_is_exactly_one_forward_pass(separator, tmp_path):
    mix = torch.randn(RATE) * 0.1
    src = write(tmp_path / "short.wav", mix)
    paths = separator.separate_file(src, chunk_seconds=2.0, progress=False)
    assert [p.name for p in paths] == ["short_s1.wav", "short_s2.wav"]
    assert all(p.parent == tmp_path for p in paths)  # default: next to the input
    with torch.no_grad():
        ref = fit_to_mixture(separator.model(mix[None]), mix[None])[0]
    for k, path in enumerate(paths):
        out, rate = read(path)
        assert rate == RATE and sf.info(str(path)).subtype == "FLOAT"
        assert torch.equal(out, ref[k])


def test_other_rate_and_stereo_are_resampled_and_downmixed(separator, tmp_path):
    stereo = torch.randn(2, 22050) * 0.1  # 0.5 s at 44.1 kHz
    src = write(tmp_path / "hi.flac", stereo, rate=44100, subtype="PCM_24")
    paths = separator.separate_file(src, out_dir=tmp_path / "out", progress=False)
    stored = torch.from_numpy(sf.read(str(src), dtype="float32")[0].T)
    mono = taf.resample(stored.mean(0, keepdim=True), 44100, RATE)
    with torch.no_grad():
        ref = taf.resample(fit_to_mixture(separator.model(mono), mono), RATE, 44100)[0, :, :22050]
    for k, path in enumerate(paths):
        out, rate = read(path)
        assert rate == 44100 and out.shape == (22050,)
        torch.testing.assert_close(out, ref[k], atol=1e-5, rtol=1e-4)


def test_each_channel_separates_channels_independently(separator, tmp_path):
    wav = torch.randn(3, 4000) * 0.1
    src = write(tmp_path / "multi.wav", wav)
    paths = separator.separate_file(src, channels="each", progress=False)
    assert [p.name for p in paths] == [f"multi_ch{c}_s{k}.wav" for c in (1, 2, 3) for k in (1, 2)]
    ref = separator.separate_batch(wav)  # [3, T, 2]
    for i, path in enumerate(paths):
        torch.testing.assert_close(read(path)[0], ref[i // 2, :, i % 2])


@pytest.mark.parametrize("frames", [1, 79, 4000, 12345])
def test_output_length_equals_input_length(separator, tmp_path, frames):
    src = write(tmp_path / "x.wav", torch.randn(frames) * 0.1)
    paths = separator.separate_file(src, chunk_seconds=0.5, overlap_seconds=0.1, progress=False)
    for path in paths:
        assert sf.info(str(path)).frames == frames


def test_progress_callable_is_called_after_each_chunk(separator, tmp_path):
    # 1.3 s in 0.5 s chunks with 0.1 s overlap: chunks start at 0, 0.4, 0.8 s
    src = write(tmp_path / "x.wav", torch.randn(int(1.3 * RATE)) * 0.1)
    calls = []
    separator.separate_file(src, chunk_seconds=0.5, overlap_seconds=0.1,
                            progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    one = write(tmp_path / "one.wav", torch.randn(RATE // 4) * 0.1)  # one chunk: still reported
    calls.clear()
    separator.separate_file(one, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 1)]


def test_long_file_matches_in_memory_chunking(separator, tmp_path):
    mix = torch.randn(RATE * 3) * 0.1
    src = write(tmp_path / "long.wav", mix)
    paths = separator.separate_file(src, chunk_seconds=0.8, overlap_seconds=0.2, progress=False)
    ref = separator.separate_long(mix[None], chunk_seconds=0.8, overlap_seconds=0.2)[0]
    for k, path in enumerate(paths):
        torch.testing.assert_close(read(path)[0], ref[:, k], atol=1e-6, rtol=1e-5)


class SwappingBandSplit(nn.Module):
    """Splits low / high frequencies, and swaps the output order on every other call."""

    num_sources = 2

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, mix):
        spec = torch.fft.rfft(mix)
        keep = torch.fft.rfftfreq(mix.shape[-1], 1 / RATE) < 1000
        low = torch.fft.irfft(spec * keep, n=mix.shape[-1])
        out = torch.stack([low, mix - low], dim=1)
        self.calls += 1
        return out.flip(1) if self.calls % 2 == 0 else out


def test_speaker_stays_on_one_output_across_chunks(tmp_path):
    t = torch.arange(RATE * 4) / RATE
    low = 0.3 * torch.sin(2 * torch.pi * 200 * t) * (1 + 0.5 * torch.sin(2 * torch.pi * 0.7 * t))
    high = 0.3 * torch.sin(2 * torch.pi * 2500 * t) * (1 + 0.5 * torch.cos(2 * torch.pi * 1.3 * t))
    model = SwappingBandSplit()
    sep = Separator(model, RATE)
    paths = sep.separate_file(write(tmp_path / "bands.wav", low + high), chunk_seconds=0.5,
                              overlap_seconds=0.1, progress=False)
    assert model.calls > 8
    out = torch.stack([read(p)[0] for p in paths])
    truth = torch.stack([low, high])
    for start in range(0, t.numel(), RATE // 4):  # every quarter second, same assignment
        seg = slice(start, start + RATE // 4)
        corr = torch.corrcoef(torch.cat([out[:, seg], truth[:, seg]]))[:2, 2:]
        assert corr[0, 0] > 0.95 and corr[1, 1] > 0.95


def test_silent_input_gives_silent_outputs_with_a_warning(separator, tmp_path):
    src = write(tmp_path / "silence.wav", torch.zeros(4000))
    with pytest.warns(UserWarning, match="silence.wav: input is silent"):
        paths = separator.separate_file(src, progress=False)
    for path in paths:
        out, _ = read(path)
        assert out.shape == (4000,) and not out.any()


def test_existing_output_is_refused_unless_overwrite(separator, tmp_path):
    src = write(tmp_path / "a.wav", torch.randn(800) * 0.1)
    (tmp_path / "a_s2.wav").write_bytes(b"mine")
    with pytest.raises(OutputError, match="a_s2.wav: output exists; pass --overwrite"):
        separator.separate_file(src, progress=False)
    assert (tmp_path / "a_s2.wav").read_bytes() == b"mine"
    assert not (tmp_path / "a_s1.wav").exists()
    separator.separate_file(src, overwrite=True, progress=False)
    assert sf.info(str(tmp_path / "a_s2.wav")).frames == 800


def test_output_equal_to_input_is_always_refused(separator, tmp_path):
    # "x_s1.wav" is an input of the same call: separating "x.wav" would overwrite it
    other = write(tmp_path / "x_s1.wav", torch.randn(800) * 0.1)
    before = digest(other)
    src = write(tmp_path / "x.wav", torch.randn(800) * 0.1)
    with pytest.raises(OutputError, match="would overwrite an input"):
        separator.separate_file(src, overwrite=True, protected=(other,), progress=False)
    assert digest(other) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav", "x_s1.wav"]


def test_error_in_a_late_chunk_leaves_no_output(separator, tmp_path):
    mix = torch.randn(RATE * 2) * 0.1
    mix[RATE + 100] = float("inf")
    src = write(tmp_path / "bad.wav", mix)
    before = digest(src)
    with pytest.raises(AudioError, match=r"bad.wav: contains NaN or Inf samples at t=1.01"):
        separator.separate_file(src, chunk_seconds=0.5, overlap_seconds=0.1, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["bad.wav"] and digest(src) == before


def test_out_dir_that_is_a_file_is_refused(separator, tmp_path):
    src = write(tmp_path / "a.wav", torch.randn(800) * 0.1)
    (tmp_path / "taken").write_text("x")
    with pytest.raises(OutputError, match="taken: output folder is an existing file"):
        separator.separate_file(src, out_dir=tmp_path / "taken", progress=False)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    from audionets import hub

    torch.manual_seed(0)
    spec = {"name": "sepformer", **TINY}
    model = MODELS.build("sepformer", **TINY)
    meta = hub.ModelMeta(task="separation", sample_rate=RATE, config={
        "model": spec,
        # as a training config saves it: per-split settings and the training segment length
        "data": {"name": "synth_mix", "segment_seconds": 2.0, "dynamic": True,
                 "num_examples": 800, "valid": {"num_examples": 64}, "test": {"num_examples": 8}},
    })
    return hub.save_pretrained(model, meta, tmp_path_factory.mktemp("tiny") / "sep")


def test_from_pretrained_loads_the_saved_model(model_folder):
    from audionets import hub

    model, _ = hub.load_model(model_folder)
    sep = Separator.from_pretrained(model_folder)
    assert (sep.sample_rate, sep.num_sources) == (RATE, 2)
    assert sep.config["data"]["name"] == "synth_mix"
    if prepack_available():  # on CPU the linear layers run with oneDNN pre-packed weights
        assert not any(type(m) is nn.Linear for m in sep.model.modules())
    mix = torch.randn(2, 3000) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(sep.separate_batch(mix),
                                   fit_to_mixture(model(mix), mix).transpose(1, 2))


@pytest.mark.skipif(not int8_quantization_available(), reason="int8 quantization does not work "
                    "with this PyTorch (tests/test_fallbacks.py runs the float fallback)")
def test_int8_quantization_stays_close_to_float(model_folder):
    from audionets.metrics import si_snr

    float_sep = Separator.from_pretrained(model_folder)
    int8_sep = Separator.from_pretrained(model_folder, quantize="int8")
    assert any("quantized" in type(m).__module__ for m in int8_sep.model.modules())
    mix = torch.randn(1, 4000) * 0.1
    ref, est = float_sep.separate_batch(mix), int8_sep.separate_batch(mix)
    assert not torch.equal(ref, est)
    assert si_snr(est.transpose(1, 2), ref.transpose(1, 2)).min() > 15


@pytest.mark.parametrize("synthetic", [False, True], ids=["held-out-speech", "synthetic"])
def test_demo_writes_consistent_files_and_reports_si_snri(model_folder, tmp_path, capsys,
                                                          synthetic):
    import re

    from audionets.cli import main
    from audionets.metrics import si_snr_improvement

    out_dir = tmp_path / "demo"
    argv = ["demo", "--out-dir", str(out_dir), "--model", str(model_folder), "--seed", "3"]
    assert main(argv + ["--synthetic"] * synthetic) == 0
    printed = capsys.readouterr().out
    assert ("synth_mix test split" in printed) == synthetic
    assert ("held-out voices" in printed) == (not synthetic)
    names = ["mixture.wav", "reference_s1.wav", "estimate_s1.wav", "reference_s2.wav",
             "estimate_s2.wav", "spectrograms.png"]
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(names)
    assert (out_dir / "spectrograms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    mix = read(out_dir / "mixture.wav")[0]
    refs = torch.stack([read(out_dir / f"reference_s{k}.wav")[0] for k in (1, 2)])
    ests = torch.stack([read(out_dir / f"estimate_s{k}.wav")[0] for k in (1, 2)])
    torch.testing.assert_close(refs.sum(0), mix, atol=1e-5, rtol=1e-5)  # clean 2-talker mixture
    reported = float(re.search(r"SI-SNR improvement: (-?[\d.]+) dB", printed).group(1))
    assert reported == pytest.approx(float(si_snr_improvement(ests, refs, mix).mean()), abs=0.051)
    # estimates are in the references' order: the other order must not be better
    swapped = float(si_snr_improvement(ests.flip(0), refs, mix).mean())
    assert reported >= swapped - 0.051


def test_cli_raw_scale_keeps_the_model_level(model_folder, tmp_path):
    from audionets import hub
    from audionets.cli import main

    model, _ = hub.load_model(model_folder)
    mix = torch.randn(3000) * 0.1
    src = write(tmp_path / "m.wav", mix)
    assert main(["separate", str(src), "--model", str(model_folder), "--out-dir",
                 str(tmp_path / "fit")]) == 0
    assert main(["separate", str(src), "--model", str(model_folder), "--out-dir",
                 str(tmp_path / "raw"), "--raw-scale"]) == 0
    with torch.no_grad():
        raw = model(mix[None])
    for k in range(2):
        fitted_out = read(tmp_path / "fit" / f"m_s{k + 1}.wav")[0]
        raw_out = read(tmp_path / "raw" / f"m_s{k + 1}.wav")[0]
        torch.testing.assert_close(raw_out, raw[0, k], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(fitted_out, fit_to_mixture(raw, mix[None])[0, k],
                                   atol=1e-5, rtol=1e-4)


class OrderByParity(nn.Module):
    """A shift-equivariant 'separator' (pointwise sources ``x`` and ``x**2 - 1``) that returns
    them swapped and sign-flipped for odd input lengths, as a real model may order its sources
    differently from pass to pass."""

    num_sources, hop_length = 2, 2

    def forward(self, mix):
        sources = torch.stack([mix, mix.pow(2) - 1], dim=1)
        return -sources.flip(1) if mix.shape[-1] % 2 else sources


def test_shifted_passes_are_lined_up_before_they_are_averaged():
    """hop 2, shifts 2: the second pass sees the input one sample later (odd length), so its
    sources come swapped and flipped; lined up, every pass is the same and so is the mean."""
    mix = torch.randn(3, 1000)
    sep = Separator(OrderByParity(), RATE, rescale=False, shifts=2)
    assert sep.offsets == [0, 1]
    expected = torch.stack([mix, mix.pow(2) - 1], dim=-1)
    torch.testing.assert_close(sep.separate_batch(mix), expected)


def test_shifts_average_the_passes_over_the_delayed_input():
    torch.manual_seed(0)
    model = MODELS.build("sudormrf", encoder_kernel_size=16, encoder_stride=8,
                         encoder_channels=16, channels=8, hidden_channels=16, num_blocks=1, depth=2)
    model.eval()
    mix = torch.randn(1, 2000) * 0.1
    sep = Separator(model, RATE, rescale=False, shifts=4)
    assert sep.offsets == [0, 2, 4, 6]
    with torch.no_grad():
        passes = [model(torch.nn.functional.pad(mix, (k, 0)))[..., k:k + 2000]
                  for k in sep.offsets]
    from audionets.inference.chunking import match_sources

    total = passes[0].clone()
    for est in passes[1:]:  # the order of an untrained model's sources may change per pass
        perm, sign = match_sources(total, est)
        total += sign[0, :, None] * est[0, perm[0]]
    torch.testing.assert_close(sep.separate_batch(mix), (total / 4).transpose(1, 2))
    assert not torch.allclose(sep.separate_batch(mix), passes[0].transpose(1, 2), atol=1e-4)


def test_shifts_apply_to_files_as_to_batches(tmp_path):
    torch.manual_seed(0)
    sep = Separator(MODELS.build("sepformer", **TINY), RATE, shifts=2)
    mix = torch.randn(2400) * 0.1
    paths = sep.separate_file(write(tmp_path / "m.wav", mix), progress=False)
    batch = sep.separate_batch(mix[None])[0]
    for k, path in enumerate(paths):
        torch.testing.assert_close(read(path)[0], batch[:, k], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("shifts, match", [
    (0, "whole number >= 1"), (1.5, "whole number >= 1"), (True, "whole number >= 1"),
    (9, r"from 1 to the model's encoder hop \(8\)"),
])
def test_bad_shifts_are_one_line_config_errors(shifts, match):
    from audionets.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        Separator(MODELS.build("sepformer", **TINY), RATE, shifts=shifts)


def test_shifts_need_a_model_with_an_encoder_hop():
    from audionets.errors import ConfigError

    class NoHop(nn.Module):
        num_sources = 2

        def forward(self, mix):
            return torch.stack([mix, mix], 1)

    assert Separator(NoHop(), RATE).offsets == [0]
    with pytest.raises(ConfigError, match="needs a model with an encoder hop.*NoHop"):
        Separator(NoHop(), RATE, shifts=2)


def test_cli_shifts_writes_the_averaged_estimates(model_folder, tmp_path):
    from audionets.cli import main

    mix = torch.randn(3000) * 0.1
    src = write(tmp_path / "m.wav", mix)
    assert main(["separate", str(src), "--model", str(model_folder), "--out-dir",
                 str(tmp_path / "out"), "--shifts", "2"]) == 0
    expected = Separator.from_pretrained(model_folder, shifts=2).separate_batch(mix[None])[0]
    for k in range(2):
        torch.testing.assert_close(read(tmp_path / "out" / f"m_s{k + 1}.wav")[0],
                                   expected[:, k], atol=1e-6, rtol=1e-5)
