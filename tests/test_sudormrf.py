"""SuDoRM-RF: lengths, masks, the U-ConvBlock's resolutions, config round trip, learning."""

from __future__ import annotations

import pytest
import torch

from audionets.errors import ConfigError
from audionets.metrics import pit_si_snr_loss
from audionets.models import build_model
from audionets.models.sudormrf import SuDoRMRF, UConvBlock

TINY = dict(encoder_kernel_size=16, encoder_channels=24, channels=16, hidden_channels=32,
            num_blocks=2, depth=3)


@pytest.mark.parametrize("length", [1, 7, 16, 17, 8000, 33491])
def test_any_length_gives_the_same_length(length):
    torch.manual_seed(0)
    model = SuDoRMRF(**TINY).eval()
    out = model(torch.randn(2, length))
    assert out.shape == (2, 2, length) and torch.isfinite(out).all()


def test_items_of_a_batch_are_independent():
    torch.manual_seed(0)
    model = SuDoRMRF(**TINY).eval()
    mix = torch.randn(3, 4000)
    together = model(mix)
    alone = torch.cat([model(mix[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def test_softmax_masks_sum_to_one_and_relu_masks_are_non_negative():
    torch.manual_seed(0)
    features = torch.rand(2, 24, 50)
    soft = SuDoRMRF(**TINY, mask_act="softmax").masker(features)
    assert soft.shape == (2, 2, 24, 50)
    torch.testing.assert_close(soft.sum(1), torch.ones(2, 24, 50))
    relu = SuDoRMRF(**TINY).masker(features)
    assert (relu >= 0).all() and (relu == 0).any()


def test_uconv_block_works_at_halved_resolutions():
    """depth 4: the depthwise chain runs at L, L/2, L/4, L/8 frames, and the output is [B, C, L]."""
    block = UConvBlock(8, 16, depth=4).eval()
    lengths = []
    for conv in block.downsample:
        conv.register_forward_hook(lambda module, inputs, out: lengths.append(out.shape[-1]))
    out = block(torch.randn(2, 8, 64))
    assert lengths == [64, 32, 16, 8] and out.shape == (2, 8, 64)


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = SuDoRMRF(**TINY)
    mix, sources = torch.randn(2, 2000), torch.randn(2, 2, 2000)
    pit_si_snr_loss(model(mix), sources).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing


def test_config_rebuilds_the_same_model():
    torch.manual_seed(0)
    model = build_model({"name": "sudormrf", **TINY}).eval()
    again = build_model(model.config).eval()
    again.load_state_dict(model.state_dict())
    mix = torch.randn(1, 3000)
    torch.testing.assert_close(again(mix), model(mix))
    assert model.config["num_blocks"] == 2 and model.config["name"] == "sudormrf"


def test_paper_size():
    """The defaults are the paper's 1.0x model: 2.66M parameters (reported: 2.66M)."""
    assert sum(p.numel() for p in SuDoRMRF().parameters()) == pytest.approx(2.66e6, rel=0.02)


@pytest.mark.parametrize("bad, match", [
    (dict(mask_act="sigmoid"), "mask_act"), (dict(encoder_stride=40), "encoder_stride"),
    (dict(num_blocks=0), "num_blocks"), (dict(channels=-3), "channels"),
])
def test_bad_arguments(bad, match):
    with pytest.raises(ConfigError, match=match):
        SuDoRMRF(**{**TINY, **bad})


def test_learns_to_separate_two_tones():
    """A few dozen steps take a tiny model well above 0 dB on a fixed two-tone mixture."""
    torch.manual_seed(0)
    t = torch.arange(2000) / 8000
    sources = torch.stack([torch.sin(2 * torch.pi * 300 * t), 0.5 * torch.sign(
        torch.sin(2 * torch.pi * 1700 * t))]).unsqueeze(0)
    mix = sources.sum(1)
    model = SuDoRMRF(**TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss = pit_si_snr_loss(model(mix), sources).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert -loss.item() > 8.0
