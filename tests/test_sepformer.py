"""SepFormer / DPRNN model, chunking, positional encoding, attention and int8 quantization."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from audionets.errors import ConfigError
from audionets.models import build_model
from audionets.models.sepformer import (DPRNN, DPRNN_PAPER, SEPFORMER_WSJ0_2MIX, DualPathConfig,
                                        LSTMPathModel, SepFormer, TransformerPathModel)
from audionets.nn.attention import MultiHeadSelfAttention
from audionets.nn.chunking import overlap_add, segment
from audionets.nn.positional import sinusoidal_encoding
from audionets.nn.quantization import int8_quantization_available, quantize_dynamic_int8
from audionets.registry import MODELS

TINY = dict(
    encoder_kernel_size=8, encoder_channels=8, d_model=16, chunk_size=10, num_blocks=1,
    intra_layers=1, inter_layers=1, nhead=2, d_ffn=32,
)
TINY_LSTM = dict(TINY, block_type="lstm", lstm_hidden_size=8, linear_after_intra_inter=True)


@pytest.mark.parametrize("config", [TINY, TINY_LSTM], ids=["transformer", "lstm"])
@pytest.mark.parametrize("num_sources", [2, 3])
@pytest.mark.parametrize("length", [1, 7, 9, 43, 1234])
def test_output_length_equals_input_length(config, num_sources, length):
    model = SepFormer(num_sources=num_sources, **config).eval()
    with torch.no_grad():
        out = model(torch.randn(2, length))
    assert out.shape == (2, num_sources, length)
    assert torch.isfinite(out).all()


def test_more_chunks_than_speechbrains_positional_table():
    # SpeechBrain's positional table stops at 2500 positions; ours is computed for any length
    model = SepFormer(**{**TINY, "encoder_kernel_size": 4, "chunk_size": 4}).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 12000))  # 5999 frames -> 3000 chunks
    assert out.shape == (1, 2, 12000) and torch.isfinite(out).all()


@pytest.mark.parametrize("norm_before", [True, False])
def test_grouped_cpu_inference_matches_training_path(norm_before):
    # inference also adds residuals and applies ReLU in place; autograd runs out of place
    model = SepFormer(**TINY, norm_before=norm_before)
    mix = torch.randn(2, 1500)
    reference = model(mix).detach()  # autograd on: all sequences at once
    for encoder in (model.masker.blocks[0].intra, model.masker.blocks[0].inter):
        encoder.group_frames = 25  # a few sequences per group
    with torch.no_grad():
        torch.testing.assert_close(model(mix), reference, atol=1e-5, rtol=1e-5)


def test_batch_items_are_independent():
    model = SepFormer(**TINY).eval()
    mix = torch.randn(3, 777)
    with torch.no_grad():
        together = model(mix)
        alone = model(mix[1:2])
    torch.testing.assert_close(together[1:2], alone, atol=1e-5, rtol=1e-5)


def test_defaults_are_the_published_architecture():
    model = SepFormer()
    assert model.num_sources == 2 and model.sample_rate == 8000
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(25.68e6, rel=0.01)
    assert len(model.masker.blocks) == 2 and len(model.masker.blocks[0].intra.layers) == 8
    assert MODELS.get("dprnn") is DPRNN
    dprnn = MODELS.build("dprnn", num_sources=3)
    assert isinstance(dprnn.masker.blocks[0].intra.lstm, nn.LSTM) and dprnn.num_sources == 3


def test_rebuild_from_config_gives_same_state_dict_names():
    model = MODELS.build("sepformer", **TINY_LSTM)
    again = MODELS.build("sepformer", **TINY_LSTM)
    again.load_state_dict(model.state_dict())


@pytest.mark.parametrize(
    "bad, python, yaml",
    [(dict(norm="bn"), "^norm must be", "^model.norm must be"),
     (dict(block_type="gru"), "^block_type must be", "^model.block_type must be"),
     (dict(nhead=3), r"^d_model \(16\) must be divisible by nhead \(3\)$",
      r"^model.d_model \(16\) must be divisible by model.nhead \(3\)$"),
     (dict(chunk_size=1), "^chunk_size must be", "^model.chunk_size must be"),
     (dict(block_type="lstm", lstm_hidden_size=5),
      r"^lstm_hidden_size: 2 x 5 must equal d_model \(16\) unless linear_after_intra_inter",
      r"^model.lstm_hidden_size: 2 x 5 must equal model.d_model \(16\) unless "
      r"model.linear_after_intra_inter"),
     (dict(num_sources=0), "^num_sources must be", "^model.num_sources must be"),
     (dict(activation="silu"), "^activation must be relu or gelu", "^model.activation must be")],
)
def test_bad_arguments_name_the_keyword_and_the_config_key(bad, python, yaml):
    """A Python user sees the keyword (a ValueError); a YAML user sees the ``model.`` key."""
    with pytest.raises(ValueError, match=python) as caught:
        SepFormer(**{**TINY, **bad})
    assert "model." not in str(caught.value)
    with pytest.raises(ConfigError, match=yaml):
        build_model({"name": "sepformer", **TINY, **bad})


def test_config_dataclass_errors_name_its_fields():
    with pytest.raises(ValueError, match=r"^d_model \(63\) must be divisible by path_model.nhead"):
        DualPathConfig(d_model=63)
    with pytest.raises(ValueError, match="^path_model.hidden_size: 2 x 5 must equal d_model"):
        DualPathConfig(d_model=16, path_model=LSTMPathModel(hidden_size=5))
    with pytest.raises(ValueError, match="^activation must be relu or gelu"):
        TransformerPathModel(activation="silu")
    with pytest.raises(TypeError, match="'bogus'"):
        SepFormer(bogus=1)
    with pytest.raises(ConfigError, match="^unknown key model.bogus; model accepts: num_sources"):
        build_model({"name": "dprnn", "bogus": 1})


def test_config_dataclass_presets_and_keywords_build_the_same_model():
    torch.manual_seed(0)
    flat = SepFormer(**TINY_LSTM, num_sources=3)
    config = DualPathConfig(
        num_sources=3, encoder_kernel_size=8, encoder_channels=8, d_model=16, chunk_size=10,
        num_blocks=1, path_model=LSTMPathModel(hidden_size=8), linear_after_intra_inter=True)
    torch.manual_seed(0)
    structured = SepFormer(config)
    assert structured.architecture == flat.architecture == config
    assert structured.config == flat.config
    mix = torch.randn(1, 300)
    with torch.no_grad():
        torch.testing.assert_close(structured(mix), flat(mix), rtol=0, atol=0)
    # model.config rebuilds the model; only the keys of its block type are written
    assert "nhead" not in flat.config and flat.config["lstm_hidden_size"] == 8
    assert SepFormer(**{k: v for k, v in flat.config.items() if k != "name"}).architecture == config
    # DPRNN is the dual-path model with the DPRNN_PAPER preset
    assert DPRNN().architecture == DPRNN_PAPER == SepFormer(DPRNN_PAPER).architecture
    assert DPRNN(num_sources=3).architecture == dataclasses.replace(DPRNN_PAPER, num_sources=3)
    assert SepFormer().architecture == SEPFORMER_WSJ0_2MIX
    # keywords of the other block type are accepted and have no effect (configs saved by 0.1
    # list every keyword)
    assert DPRNN(nhead=3, d_ffn=7, intra_layers=5).architecture == DPRNN_PAPER
    assert SepFormer(lstm_hidden_size=3).architecture == SEPFORMER_WSJ0_2MIX


def test_configs_saved_by_the_flat_constructor_give_the_same_model():
    """A 0.1 config lists all 25 keywords (and a DPRNN's transformer keys); it builds the same
    weights, the same computation and, from the same seed, the same initialisation."""
    saved = {"name": "dprnn", "num_sources": 2, "sample_rate": 8000, "encoder_kernel_size": 16,
             "encoder_stride": None, "encoder_channels": 16, "decoder_kernel_size": None,
             "decoder_stride": None, "d_model": 16, "chunk_size": 10, "num_blocks": 2,
             "block_type": "lstm", "intra_layers": 1, "inter_layers": 1, "nhead": 8, "d_ffn": 256,
             "dropout": 0.0, "activation": "relu", "norm_before": True,
             "positional_encoding": False, "lstm_hidden_size": 8, "lstm_layers": 2, "norm": "ln",
             "skip_around_intra": True, "linear_after_intra_inter": True, "checkpointing": False}
    model = build_model(saved)
    assert model.architecture == DualPathConfig(
        encoder_channels=16, d_model=16, chunk_size=10, num_blocks=2,
        path_model=LSTMPathModel(hidden_size=8, num_layers=2), linear_after_intra_inter=True)
    lstm = model.masker.blocks[1].inter.lstm
    assert (lstm.hidden_size, lstm.num_layers, lstm.bidirectional) == (8, 2, True)
    assert [name for name, _ in model.named_parameters()][:4] == [
        "encoder.conv.weight", "masker.norm.weight", "masker.norm.bias", "masker.in_proj.weight"]


def test_decoder_stride_defaults_to_the_encoders():
    # a longer synthesis kernel must not change the hop: outputs keep the input's time axis
    model = SepFormer(**{**TINY, "decoder_kernel_size": 16})
    assert model.decoder.deconv.stride == model.encoder.conv.stride == (4,)


@pytest.mark.parametrize(
    "config",
    [TINY, TINY_LSTM, dict(TINY, dropout=0.1, norm_before=False, norm="cln")],
    ids=["transformer", "lstm", "postnorm-dropout-cln"],
)
def test_every_parameter_gets_a_gradient(config):
    model = SepFormer(**config)
    model(torch.randn(2, 300)).square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_checkpointing_gives_the_same_gradients():
    plain = SepFormer(**{**TINY, "num_blocks": 2})
    ckpt = SepFormer(**{**TINY, "num_blocks": 2, "checkpointing": True})
    ckpt.load_state_dict(plain.state_dict())
    mix = torch.randn(2, 300)
    plain(mix).square().mean().backward()
    ckpt(mix).square().mean().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5, msg=name)


def _neg_si_snr(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    proj = (est * ref).sum(-1, keepdim=True) / ref.square().sum(-1, keepdim=True) * ref
    return -10 * torch.log10(proj.square().sum(-1) / (est - proj).square().sum(-1) + 1e-8).mean()


def test_tiny_model_fits_one_mixture():
    t = torch.arange(800) / 8000
    sources = torch.stack([torch.sin(2 * math.pi * 300 * t), torch.sign(torch.sin(2 * math.pi * 37 * t))])
    sources = sources.unsqueeze(0) * 0.5
    mix = sources.sum(1)
    model = SepFormer(**TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = _neg_si_snr(model(mix), sources)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < losses[0] - 3.0  # at least 3 dB better than at the start


def _reference_chunks(x: np.ndarray, chunk_size: int) -> tuple[np.ndarray, int]:
    """Chunks by explicit slicing of the padded sequence (even K: uniform hop K // 2)."""
    hop = chunk_size // 2
    length = x.shape[1]
    gap = chunk_size - (hop + length % chunk_size) % chunk_size
    padded = np.pad(x, ((0, 0), (hop, gap + hop), (0, 0)))
    starts = range(0, padded.shape[1] - chunk_size + 1, hop)
    return np.stack([padded[:, s : s + chunk_size] for s in starts], axis=1), gap


@pytest.mark.parametrize("length", [1, 4, 5, 19, 20, 21, 100])
@pytest.mark.parametrize("chunk_size", [2, 4, 10, 11])
def test_segment_and_overlap_add(length, chunk_size):
    x = torch.randn(2, length, 3)
    chunks, gap = segment(x, chunk_size)
    assert chunks.shape[0] == 2 and chunks.shape[2:] == (chunk_size, 3)
    if chunk_size % 2 == 0:
        expected, expected_gap = _reference_chunks(x.numpy(), chunk_size)
        assert gap == expected_gap
        np.testing.assert_array_equal(chunks.numpy(), expected)
    # each frame lies in exactly two chunks: overlap-add doubles the input, as in SpeechBrain
    torch.testing.assert_close(overlap_add(chunks, gap), 2 * x)


def test_positional_encoding_formula_and_speechbrain_values():
    table = sinusoidal_encoding(3000, 16).numpy()
    pos = np.arange(3000)[:, None]
    freqs = 10000.0 ** (-np.arange(0, 16, 2) / 16)
    np.testing.assert_allclose(table[:, 0::2], np.sin(pos * freqs), atol=2e-3)
    np.testing.assert_allclose(table[:, 1::2], np.cos(pos * freqs), atol=2e-3)
    from speechbrain.lobes.models.transformer.Transformer import PositionalEncoding

    reference = PositionalEncoding(16).pe[0].numpy()  # defined up to 2500 frames only
    np.testing.assert_allclose(table[:2500], reference, atol=1e-6)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_encoding(10, 7)


def test_attention_matches_torch_multihead_attention():
    ours = MultiHeadSelfAttention(16, 4).eval()
    ref = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.randn(48, 16) * 0.3)
        ref.in_proj_bias.copy_(torch.randn(48) * 0.3)
        ref.out_proj.bias.copy_(torch.randn(16) * 0.3)
    ours.load_state_dict(
        {"qkv.weight": ref.in_proj_weight, "qkv.bias": ref.in_proj_bias,
         "out.weight": ref.out_proj.weight, "out.bias": ref.out_proj.bias}
    )
    x = torch.randn(3, 11, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x, x, x, need_weights=False)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not int8_quantization_available(), reason="int8 quantization does not work "
                    "with this PyTorch (tests/test_fallbacks.py runs the float fallback)")
@pytest.mark.parametrize("config", [TINY, TINY_LSTM], ids=["transformer", "lstm"])
def test_int8_quantization_keeps_outputs_close(config):
    model = SepFormer(**config).eval()
    quantized = quantize_dynamic_int8(model)
    assert isinstance(model.masker.in_proj, nn.Linear)  # the original is left untouched
    assert type(quantized.masker.in_proj) is not nn.Linear
    assert quantized.num_sources == 2 and quantized.sample_rate == 8000
    mix = torch.randn(1, 2000)
    with torch.no_grad():
        ref, out = model(mix), quantized(mix)
    assert out.shape == ref.shape
    assert -_neg_si_snr(out, ref).item() > 15.0  # int8 output within ~15 dB SI-SNR of fp32
