"""Activations, the Conv1d/Conv2d blocks and the audio classifiers (td_cnn, tf_cnn, cnn2d, rnn,
attention)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from audionets.errors import ConfigError
from audionets.models import build_model
from audionets.registry import MODELS
from audionets.nn.activations import activation_names, get_activation
from audionets.nn.conv import ConvBlock1d, ConvBlock2d

SR = 8000
FRONTENDS = {
    "waveform": {"name": "waveform"},
    "stft": {"name": "stft", "n_fft": 128, "hop_length": 64},
    "logmel": {"name": "logmel", "n_fft": 256, "hop_length": 80, "n_mels": 16},
}
TINY = {
    "td_cnn": dict(channels=[8, 8, 16], kernel_sizes=[40, 3, 3], strides=[4, 1, 1], pool=[4, 2, 2]),
    "tf_cnn": dict(channels=[8, 16], pool=2),
    "cnn2d": dict(channels=[4, 8], pool=2),
    "rnn_classifier": dict(hidden_size=8, num_layers=1),
    "attention_classifier": dict(d_model=16, num_heads=2, num_layers=1, ff_dim=32),
}


# --- activations ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", activation_names())
def test_every_activation_builds_and_keeps_shape(name):
    act = get_activation(name, num_channels=3)
    x = torch.randn(2, 3, 5, requires_grad=True)
    y = act(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name, reference", [
    ("relu", torch.relu), ("tanh", torch.tanh), ("sigmoid", torch.sigmoid),
    ("gelu", nn.functional.gelu), ("silu", lambda x: x * torch.sigmoid(x)),
    ("leaky_relu", lambda x: torch.where(x > 0, x, 0.01 * x)),
    ("elu", lambda x: torch.where(x > 0, x, torch.exp(x) - 1)),
])
def test_activation_values_match_their_definitions(name, reference):
    x = torch.linspace(-4, 4, 101)
    torch.testing.assert_close(get_activation(name)(x), reference(x))


def test_activation_names_are_case_insensitive_and_prelu_learns_per_channel():
    assert isinstance(get_activation("ReLU"), nn.ReLU)
    assert get_activation("prelu", num_channels=7).weight.numel() == 7


def test_unknown_activation_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match="model.activation 'relux'"):
        get_activation("relux", where="model.activation")


# --- ConvBlock1d ---------------------------------------------------------------------------

@pytest.mark.parametrize("length", [1, 2, 7, 16, 101])
@pytest.mark.parametrize("kernel, stride, pool", [(3, 1, 1), (80, 4, 4), (4, 2, 3), (1, 3, 2)])
@pytest.mark.parametrize("residual", [False, True])
def test_conv_block_length_is_ceil_of_stride_then_pool(length, kernel, stride, pool, residual):
    block = ConvBlock1d(4, 6, kernel, stride=stride, pool=pool, residual=residual).eval()
    out = block(torch.randn(2, 4, length))
    assert out.shape == (2, 6, math.ceil(math.ceil(length / stride) / pool))


def test_residual_block_with_zero_conv_is_the_identity():
    block = ConvBlock1d(5, 5, 3, batch_norm=False, activation="relu", residual=True)
    nn.init.zeros_(block.conv.weight)
    nn.init.zeros_(block.conv.bias)
    x = torch.randn(2, 5, 9)
    torch.testing.assert_close(block(x), x)


def test_residual_projection_only_when_shapes_differ():
    assert isinstance(ConvBlock1d(4, 4, 3, residual=True).skip, nn.Identity)
    assert isinstance(ConvBlock1d(4, 8, 3, residual=True).skip, nn.Conv1d)
    assert isinstance(ConvBlock1d(4, 4, 3, stride=2, residual=True).skip, nn.Conv1d)
    assert ConvBlock1d(4, 4, 3).skip is None


def test_conv_block_equals_manual_conv_bn_relu_pool():
    block = ConvBlock1d(3, 4, 5, stride=1, pool=2).eval()
    x = torch.randn(2, 3, 12)
    conv = nn.functional.conv1d(nn.functional.pad(x, (2, 2)), block.conv.weight)
    bn = block.norm
    normed = (conv - bn.running_mean[:, None]) / torch.sqrt(bn.running_var[:, None] + bn.eps)
    affine = normed * bn.weight[:, None] + bn.bias[:, None]
    expected = nn.functional.max_pool1d(torch.relu(affine), 2)
    torch.testing.assert_close(block(x), expected)


def test_groups_split_the_convolution_and_must_divide_channels():
    block = ConvBlock1d(8, 12, 3, groups=4)
    assert block.conv.weight.shape == (12, 2, 3)
    with pytest.raises(ValueError, match=r"^groups\[0\]=3 must divide"):
        ConvBlock1d(8, 12, 3, groups=3)
    with pytest.raises(ConfigError, match=r"^model.groups\[1\]=3 must divide"):
        _tiny("tf_cnn", "logmel", channels=[6, 8], groups=[1, 3])


# --- ConvBlock2d and cnn2d ----------------------------------------------------------------

@pytest.mark.parametrize("height, width, pool", [(1, 1, 2), (5, 7, 2), (64, 101, 2), (9, 4, 3)])
def test_conv_block_2d_keeps_size_then_pools_with_ceil(height, width, pool):
    block = ConvBlock2d(2, 5, 3, pool=pool).eval()
    out = block(torch.randn(3, 2, height, width))
    assert out.shape == (3, 5, math.ceil(height / pool), math.ceil(width / pool))
    with pytest.raises(ValueError, match=r"^kernel_sizes\[1\] must be an odd int"):
        ConvBlock2d(2, 5, 4, layer=1)


def test_conv_block_2d_equals_manual_conv_bn_relu_pool():
    block = ConvBlock2d(2, 3, 3, pool=2).eval()
    x = torch.randn(2, 2, 6, 8)
    conv = nn.functional.conv2d(x, block.conv.weight, padding=1)
    bn = block.norm
    shape = (1, -1, 1, 1)
    normed = (conv - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
    expected = nn.functional.max_pool2d(torch.relu(normed * bn.weight.view(shape)
                                                   + bn.bias.view(shape)), 2)
    torch.testing.assert_close(block(x), expected)


def test_cnn2d_recognises_a_pattern_at_a_pitch_it_never_saw():
    # the same filters slide over frequency: a feature map moved up by k mel bands moves by k
    # rows, so the frequency-averaged, time-pooled embedding barely changes (it would not for a
    # Conv1d over frames, whose first layer mixes all bands at once)
    torch.manual_seed(0)
    model = build_model({"name": "cnn2d", "num_classes": 2, "sample_rate": SR,
                         "frontend": FRONTENDS["logmel"], "channels": [4, 8], "pool": 1,
                         "input_norm": "none"}).eval()
    image = torch.zeros(1, 1, 16, 12)
    image[..., 3:5, 2:9] = 1.0
    shifted = torch.roll(image, 6, dims=2)  # the same shape, six bands higher
    maps = model.blocks(image).mean(dim=2)
    maps_shifted = model.blocks(shifted).mean(dim=2)
    torch.testing.assert_close(maps, maps_shifted)


# --- classifiers: shapes, gradients, rebuild -----------------------------------------------

def _tiny(name, frontend, **extra):
    return build_model({"name": name, "num_classes": 3, "sample_rate": SR,
                        "frontend": FRONTENDS[frontend], **TINY[name], **extra})


@pytest.mark.parametrize("frontend", sorted(FRONTENDS))
@pytest.mark.parametrize("name", sorted(TINY))
def test_classifier_shapes_and_gradients_on_every_frontend(name, frontend):
    model = _tiny(name, frontend)
    wav = torch.randn(2, 480)
    logits = model(wav)
    assert logits.shape == (2, 3)
    logits.logsumexp(-1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.sample_rate == SR and model.num_classes == 3


@pytest.mark.parametrize("name", sorted(TINY))
def test_classifier_rebuilds_from_its_config_and_state_dict(name):
    config = {"name": name, "num_classes": 4, "sample_rate": SR,
              "frontend": FRONTENDS["logmel"], **TINY[name]}
    model, clone = build_model(config).eval(), build_model(config).eval()
    clone.load_state_dict(model.state_dict())
    wav = torch.randn(3, 1000)
    torch.testing.assert_close(model(wav), clone(wav))


def test_classifier_examples_are_independent_in_eval_mode():
    model = _tiny("tf_cnn", "logmel").eval()
    wav = torch.randn(3, 1600)
    torch.testing.assert_close(model(wav)[1:2], model(wav[1:2]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["td_cnn", "tf_cnn"])
def test_cnn_options_groups_residual_and_no_batch_norm(name):
    model = _tiny(name, "logmel", groups=[1, 2] if name == "tf_cnn" else [1, 2, 4],
                  residual=True, batch_norm=False, activation="elu", dropout=0.2,
                  input_norm="instance")
    assert not any(isinstance(m, nn.BatchNorm1d) for m in model.modules())
    assert model.blocks[1].conv.groups == 2
    assert all(block.skip is not None for block in model.blocks)
    model(torch.randn(2, 1200)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_tf_cnn_state_dict_names_are_stable():
    """Shipped checkpoints depend on these names: change them only with a converter."""
    model = build_model({"name": "tf_cnn", "num_classes": 2, "sample_rate": SR,
                         "frontend": FRONTENDS["logmel"], "residual": True,
                         "channels": [8, 16]})
    names = {k for k in model.state_dict() if not k.startswith("frontend.")}
    expected = {"input_norm.weight", "input_norm.bias", "input_norm.running_mean",
                "input_norm.running_var", "input_norm.num_batches_tracked",
                "head.weight", "head.bias"}
    for i in range(2):
        expected |= {f"blocks.{i}.conv.weight", f"blocks.{i}.skip.weight"} | {
            f"blocks.{i}.norm.{s}" for s in
            ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    assert names == expected


@pytest.mark.parametrize("kwargs, match", [
    (dict(kernel_sizes=[3, 3, 3]), "model.kernel_sizes has 3 entries"),
    (dict(pool=[2]), "model.pool has 1 entries"),
    (dict(groups=[1, 3]), r"model.groups\[1\]=3"),
    (dict(dropout=1.0), "model.dropout"),
    (dict(activation="nope"), "model.activation 'nope'"),
    (dict(input_norm="layer"), "model.input_norm 'layer'"),
    (dict(channels=[]), "model.channels"),
    (dict(num_classes=0), "model.num_classes"),
    (dict(frontend={"name": "logmel", "sample_rate": 16000}), "model.frontend.sample_rate"),
    (dict(frontend={"name": "logmel", "n_melz": 16}), "model.frontend.n_melz"),
    (dict(frontend={"n_mels": 16}), "model.frontend"),
    (dict(colour="red"), "model.colour"),
])
def test_bad_classifier_config_is_a_config_error(kwargs, match):
    config = {"name": "tf_cnn", "num_classes": 2, "sample_rate": SR, "channels": [8, 8],
              "frontend": FRONTENDS["logmel"], **kwargs}
    with pytest.raises(ConfigError, match=match):
        build_model(config)


# --- attention -----------------------------------------------------------------------------

@pytest.mark.parametrize("positional", ["sinusoidal", "learned", "none"])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_attention_classifier_options(positional, pooling):
    model = _tiny("attention_classifier", "logmel", positional=positional, pooling=pooling)
    model(torch.randn(2, 900)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_attention_learned_positions_reject_too_many_frames():
    model = _tiny("attention_classifier", "logmel", positional="learned", max_frames=4)
    with pytest.raises(ConfigError, match="max_frames=4"):
        model(torch.randn(1, 2000))


def test_attention_without_positions_and_mean_pooling_ignores_frame_order():
    model = _tiny("attention_classifier", "logmel", positional="none", pooling="mean",
                  input_norm="none").eval()
    features = model.frontend(torch.randn(2, 1600))
    perm = torch.randperm(features.shape[-1])

    def logits(feats):
        x = model.proj(feats.transpose(1, 2))
        for layer in model.layers:
            x = layer(x)
        return model.head(model.norm(x).mean(1))

    torch.testing.assert_close(logits(features), logits(features[..., perm]),
                               rtol=1e-4, atol=1e-5)


# --- learning ------------------------------------------------------------------------------

def _tones_vs_noise(n, generator):
    """Half pure tones at random pitch and level (label 0), half white noise (label 1)."""
    t = torch.arange(SR // 4) / SR
    labels = torch.arange(n) % 2
    freqs = 200 + 1800 * torch.rand(n, 1, generator=generator)
    gains = 0.05 + 0.5 * torch.rand(n, 1, generator=generator)
    tones = torch.sin(2 * math.pi * freqs * t + 6.28 * torch.rand(n, 1, generator=generator))
    noise = torch.randn(n, t.numel(), generator=generator).clamp(-3, 3) / 3
    wav = torch.where(labels[:, None] == 0, tones, noise) * gains
    return wav, labels


def test_tiny_tf_cnn_learns_tones_vs_noise():
    generator = torch.Generator().manual_seed(0)
    model = build_model({"name": "tf_cnn", "num_classes": 2, "sample_rate": SR,
                         "frontend": FRONTENDS["logmel"], "channels": [8, 8], "pool": 2})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        wav, labels = _tones_vs_noise(16, generator)
        loss = nn.functional.cross_entropy(model(wav), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    wav, labels = _tones_vs_noise(64, generator)
    with torch.no_grad():
        accuracy = (model(wav).argmax(-1) == labels).float().mean().item()
    assert accuracy >= 0.95


@pytest.mark.parametrize("name", ["td_cnn", "tf_cnn"])
def test_global_pooling_options(name):
    torch.manual_seed(0)
    small = {"num_classes": 3, "sample_rate": 8000, "channels": [4, 6]}
    if name == "td_cnn":
        small.update(kernel_sizes=[16, 3], strides=[4, 1])
    wav = torch.randn(2, 4000)
    pooled = {}
    for pooling in ("mean", "max", "stats"):
        torch.manual_seed(0)  # same weights for every pooling
        model = MODELS.build(name, pooling=pooling, **small).eval()
        with torch.no_grad():
            frames = model.blocks(model.input_norm(model.frontend(wav)))  # [B, 6, T'']
            pooled[pooling] = model.embed(wav)
        assert model.head.in_features == (12 if pooling == "stats" else 6)
        assert model(wav).shape == (2, 3)
    torch.testing.assert_close(pooled["mean"], frames.mean(-1))
    torch.testing.assert_close(pooled["max"], frames.amax(-1))
    reference_std = torch.from_numpy(frames.numpy().std(axis=-1))  # NumPy: population std
    torch.testing.assert_close(pooled["stats"], torch.cat((frames.mean(-1), reference_std), -1))
    with pytest.raises(ValueError, match="^unknown pooling 'median'"):
        MODELS.build(name, pooling="median", **small)
    with pytest.raises(ConfigError, match="^unknown model.pooling 'median'"):
        build_model({"name": name, "pooling": "median", **small})
