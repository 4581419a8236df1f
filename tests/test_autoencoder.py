"""ConvAutoencoder: exact output length for every input length, codes, gradients, learning."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from audionets.errors import ConfigError
from audionets.models import build_model
from audionets.models.autoencoder import ConvAutoencoder

LENGTHS = [1, 2, 3, 5, 7, 13, 31, 32, 33, 97, 127, 128, 1009]


@pytest.mark.parametrize("config", [
    dict(),
    dict(channels=[4, 8], kernel_sizes=[5, 3], strides=[3, 2], bottleneck_channels=2),
    dict(channels=[4, 4, 4], kernel_sizes=4, strides=[4, 1, 2], batch_norm=True,
         activation="relu"),
])
def test_output_length_equals_input_length_for_every_length(config):
    model = ConvAutoencoder(**config).eval()
    for length in LENGTHS:
        wav = torch.randn(2, length)
        assert model(wav).shape == (2, length), length
        code = model.encode(wav)
        assert code.shape[-1] == math.ceil(length / model.total_stride)


def test_encode_decode_shapes_and_forward_is_their_composition():
    model = ConvAutoencoder(channels=[4, 8], kernel_sizes=[8, 4], strides=[4, 2],
                            bottleneck_channels=3)
    wav = torch.randn(3, 100)
    z = model.encode(wav)
    assert z.shape == (3, 3, 13)
    assert model.decode(z).shape == (3, 104)
    torch.testing.assert_close(model(wav), model.decode(z, 100))


def test_output_ignores_internal_padding_and_other_examples():
    """Zero padding the input to a multiple of the stride changes nothing in the kept part."""
    model = ConvAutoencoder(channels=[4, 8], kernel_sizes=[8, 4], strides=[4, 2]).eval()
    wav = torch.randn(2, 37)
    padded = torch.nn.functional.pad(wav, (0, 3))  # 40 = 5 * 8: no internal padding
    torch.testing.assert_close(model(wav), model(padded)[:, :37])
    torch.testing.assert_close(model(wav)[1:], model(wav[1:]))


def test_normalize_input_makes_forward_gain_equivariant():
    model = ConvAutoencoder(channels=[4, 8], kernel_sizes=[8, 4], strides=[4, 2],
                            normalize_input=True).eval()
    plain = ConvAutoencoder(channels=[4, 8], kernel_sizes=[8, 4], strides=[4, 2]).eval()
    plain.load_state_dict(model.state_dict())
    wav = torch.randn(2, 77)
    torch.testing.assert_close(model(0.01 * wav), 0.01 * model(wav), rtol=1e-4, atol=1e-7)
    rms = wav.pow(2).mean(-1, keepdim=True).sqrt()
    torch.testing.assert_close(model(wav), plain(wav / rms) * rms)
    assert torch.isfinite(model(torch.zeros(1, 10))).all()


def test_gradients_reach_every_parameter():
    model = build_model({"name": "conv_autoencoder", "channels": [4, 8], "strides": 2,
                         "kernel_sizes": 4, "bottleneck_channels": 2, "sample_rate": 8000})
    wav = torch.randn(2, 50)
    nn.functional.mse_loss(model(wav), wav).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert model.sample_rate == 8000


def test_learns_to_reconstruct_smooth_signals():
    torch.manual_seed(0)
    model = ConvAutoencoder(channels=[16, 16], kernel_sizes=[4, 4], strides=[2, 2],
                            bottleneck_channels=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    t = torch.arange(256) / 8000

    def batch():
        freqs = 100 + 400 * torch.rand(8, 1)
        return torch.sin(2 * math.pi * freqs * t + 6.28 * torch.rand(8, 1))

    first = None
    for _ in range(150):
        wav = batch()
        loss = nn.functional.mse_loss(model(wav), wav)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    wav = batch()
    with torch.no_grad():
        final = nn.functional.mse_loss(model(wav), wav).item()
    assert final < 0.05 * wav.pow(2).mean().item()
    assert final < 0.1 * first


@pytest.mark.parametrize("kwargs, match", [
    (dict(kernel_sizes=[2, 4], strides=[4, 2]), r"model.kernel_sizes\[0\]=2 must be >="),
    (dict(strides=[2, 2, 2]), "model.strides has 3 entries"),
    (dict(bottleneck_channels=0), "model.bottleneck_channels"),
    (dict(activation="bogus"), "model.activation"),
    (dict(channels=[]), "model.channels"),
])
def test_bad_config_is_a_config_error(kwargs, match):
    config = {"name": "conv_autoencoder", "channels": [4, 8], "kernel_sizes": 4, "strides": 2,
              **kwargs}
    with pytest.raises(ConfigError, match=match):
        build_model(config)
