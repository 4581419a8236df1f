"""SpecAugment masking (audionets/nn/spec_augment.py) and the classifiers' ``spec_augment``."""

from __future__ import annotations

import pytest
import torch

from audionets.errors import ConfigError
from audionets.models import build_model
from audionets.nn.spec_augment import SpecAugment, build_spec_augment

SR = 8000
LOGMEL = {"name": "logmel", "n_fft": 256, "hop_length": 80, "n_mels": 16}
TINY = {
    "tf_cnn": dict(channels=[8, 16], pool=2),
    "cnn2d": dict(channels=[4, 8], pool=2),
    "rnn_classifier": dict(hidden_size=8, num_layers=1),
    "attention_classifier": dict(d_model=16, num_heads=2, num_layers=1, ff_dim=32),
}


def _masked(masked: torch.Tensor):
    """Per example: which feature rows and which frames are all zero after masking."""
    zero = masked == 0
    return zero.all(dim=2), zero.all(dim=1)  # rows [B, F], frames [B, T]


def test_masks_whole_bands_and_spans_within_their_widths_per_example():
    torch.manual_seed(0)
    features = torch.randn(64, 40, 100) + 5.0  # no zeros of its own
    module = SpecAugment(freq_masks=2, freq_width=8, time_masks=3, time_width=10).train()
    masked = module(features)
    assert masked.shape == features.shape
    kept = masked != 0
    torch.testing.assert_close(masked[kept], features[kept])  # the rest is untouched
    rows, frames = _masked(masked)
    zeros = ~kept
    # every zero lies in a fully masked row or a fully masked frame
    assert bool((zeros <= (rows[:, :, None] | frames[:, None, :])).all())
    # widths are drawn in [0, width): at most masks x (width - 1) rows / frames per example
    assert int(rows.sum(dim=1).max()) <= 2 * 7 and int(frames.sum(dim=1).max()) <= 3 * 9
    assert int(rows.sum(dim=1).max()) > 0 and int(frames.sum(dim=1).max()) > 0
    # independent per example: the masked rows differ between examples
    assert len({tuple(r.tolist()) for r in rows}) > 10


def test_identity_in_eval_and_for_none():
    features = torch.randn(2, 16, 30)
    assert SpecAugment().eval()(features) is features
    identity = build_spec_augment(None)
    assert identity(features) is features


@pytest.mark.parametrize("spec, match", [
    ({"freq_mask": 2}, "unknown key spec_augment.freq_mask"),
    ({"freq_width": -1}, "spec_augment.freq_width must be an integer >= 0"),
    ({"time_width": 2.5}, "spec_augment.time_width must be an integer >= 0"),
    ([2, 8], "spec_augment must be a mapping"),
])
def test_bad_spec_augment_config_names_the_key(spec, match):
    with pytest.raises(ConfigError, match=match):
        build_spec_augment(spec)


@pytest.mark.parametrize("name", sorted(TINY))
def test_classifiers_mask_in_training_only_and_load_weights_trained_without(name):
    config = {"name": name, "num_classes": 3, "sample_rate": SR, "frontend": LOGMEL,
              **TINY[name]}
    plain = build_model(config).eval()
    augmented = build_model({**config, "spec_augment": {"freq_masks": 2, "freq_width": 6,
                                                        "time_masks": 2, "time_width": 8}})
    augmented.load_state_dict(plain.state_dict())  # no weights of its own: strict load works
    wav = torch.randn(4, 2000)
    torch.testing.assert_close(augmented.eval()(wav), plain(wav))
    augmented.train()
    torch.manual_seed(0)
    out = augmented(wav)
    assert not torch.allclose(out, augmented(wav))  # fresh masks each call
    out.sum().backward()
    assert all(p.grad is not None for p in augmented.parameters() if p.requires_grad)


def test_cnn2d_with_spec_augment_scripts_as_the_plain_model():
    config = {"name": "cnn2d", "num_classes": 3, "sample_rate": SR, "frontend": LOGMEL,
              "spec_augment": {"freq_masks": 1, "freq_width": 4}, **TINY["cnn2d"]}
    model = build_model(config).eval()
    scripted = torch.jit.script(model)
    wav = torch.randn(2, 1600)
    torch.testing.assert_close(scripted(wav), model(wav))
