"""Fallbacks for the private/deprecated PyTorch APIs: a PyTorch upgrade costs speed, not results.

``nn.prepack`` uses private ``torch.ops.mkldnn._*`` operators and ``nn.quantization`` the
deprecated ``torch.ao.quantization``; each is probed, and these tests run the path taken when
the probe fails.
"""

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from audionets.models.sepformer import SepFormer
from audionets.nn import prepack, quantization
from audionets.nn.prepack import PrepackedLinear, prepack_linear_layers

TINY = dict(encoder_kernel_size=8, encoder_channels=8, d_model=16, chunk_size=10, num_blocks=1,
            intra_layers=1, inter_layers=1, nhead=2, d_ffn=32)


def _broken_reorder(weight, _):
    raise RuntimeError("mkldnn::_reorder_linear_weight: no such operator")


def _bias_ignoring_linear(x, packed, bias, activation, *_):
    return F.linear(x, packed)  # a changed operator that silently drops the bias


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="no oneDNN")
def test_the_prepack_probe_accepts_this_torch_and_rejects_broken_operators():
    mkldnn = torch.ops.mkldnn
    assert prepack._packed_linear_works(mkldnn._reorder_linear_weight, mkldnn._linear_pointwise)
    assert not prepack._packed_linear_works(_broken_reorder, mkldnn._linear_pointwise)
    assert not prepack._packed_linear_works(lambda w, _: w, _bias_ignoring_linear)


def test_without_packed_operators_layers_stay_plain_linear(monkeypatch):
    monkeypatch.setattr(prepack, "prepack_available", lambda: False)
    torch.manual_seed(0)
    model = SepFormer(**TINY).eval()
    mix = torch.randn(1, 1500)
    with torch.inference_mode():
        reference = model(mix)
        packed = prepack_linear_layers(copy.deepcopy(model))
        assert not any(isinstance(m, PrepackedLinear) for m in packed.modules())
        torch.testing.assert_close(packed(mix), reference)
    # a layer packed before (e.g. a pickled model loaded on a newer torch) runs as nn.Linear
    linear = nn.Linear(24, 40)
    layer = PrepackedLinear.from_linear(linear, activation="relu")
    x = torch.randn(3, 24)
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), F.relu(linear(x)), rtol=0, atol=0)
    assert layer._packed is None


def _broken_quantize(model):
    raise AttributeError("module 'torch.ao.quantization' has no attribute 'quantize_dynamic'")


def test_the_quantization_probe_accepts_this_torch_and_rejects_broken_ones():
    assert quantization._quantization_works(quantization._torch_quantize_dynamic)
    assert not quantization._quantization_works(_broken_quantize)
    assert not quantization._quantization_works(lambda model: model)  # swapped nothing


def test_without_int8_quantization_the_float_model_runs_with_a_warning(monkeypatch):
    monkeypatch.setattr(quantization, "int8_quantization_available", lambda: False)
    torch.manual_seed(0)
    model = SepFormer(**TINY).eval()
    packed = prepack_linear_layers(copy.deepcopy(model))
    with pytest.warns(RuntimeWarning, match="int8 quantization does not work .*float32") as caught:
        fallback = quantization.quantize_dynamic_int8(packed)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert fallback is not packed and not fallback.training
    assert fallback.num_sources == 2 and fallback.sample_rate == 8000
    assert not any("quantized" in type(m).__module__ for m in fallback.modules())
    mix = torch.randn(1, 1500)
    with torch.inference_mode():
        torch.testing.assert_close(fallback(mix), model(mix), atol=1e-5, rtol=1e-5)


def test_working_int8_quantization_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quantized = quantization.quantize_dynamic_int8(SepFormer(**TINY))
    assert any("quantized" in type(m).__module__ for m in quantized.modules())
