"""oneDNN pre-packed linear layers: same results as nn.Linear, in every mode, kept up to date."""

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from audionets.models.sepformer import SepFormer
from audionets.nn.attention import FeedForward
from audionets.nn.prepack import PrepackedLinear, prepack_available, prepack_linear_layers
from audionets.nn.quantization import int8_quantization_available

pytestmark = pytest.mark.skipif(not prepack_available(), reason="PyTorch built without oneDNN")

TINY = dict(encoder_kernel_size=8, encoder_channels=8, d_model=16, chunk_size=10, num_blocks=1,
            intra_layers=1, inter_layers=1, nhead=2, d_ffn=32)


def _linear(bias: bool = True) -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(24, 40, bias=bias)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("shape", [(24,), (0, 24), (1, 24), (37, 24), (3, 50, 24)])
def test_packed_forward_equals_linear(bias, activation, shape):
    linear = _linear(bias)
    packed = PrepackedLinear.from_linear(linear, activation=activation)
    x = torch.randn(shape)
    expected = linear(x)
    if activation == "relu":
        expected = expected.relu()
    for mode in (torch.inference_mode, torch.no_grad):
        with mode():
            out = packed(x)
        torch.testing.assert_close(out, expected.detach(), atol=1e-5, rtol=1e-5)
    assert packed._packed is not None and packed._packed.is_mkldnn  # the oneDNN path ran


def test_non_contiguous_input():
    linear = _linear()
    packed = PrepackedLinear.from_linear(linear)
    x = torch.randn(50, 3, 24).transpose(0, 1)
    with torch.inference_mode():
        torch.testing.assert_close(packed(x), linear(x), atol=1e-5, rtol=1e-5)


def test_shares_parameters_and_state_dict():
    linear = _linear()
    packed = PrepackedLinear.from_linear(linear)
    assert packed.weight is linear.weight and packed.bias is linear.bias
    assert packed.state_dict().keys() == linear.state_dict().keys()


def test_gradients_with_autograd_equal_linear():
    linear = _linear()
    packed = PrepackedLinear.from_linear(copy.deepcopy(linear), activation="relu")
    x = torch.randn(5, 24)
    F.relu(linear(x)).square().sum().backward()
    out = packed(x)
    assert out.requires_grad
    out.square().sum().backward()
    torch.testing.assert_close(packed.weight.grad, linear.weight.grad)
    torch.testing.assert_close(packed.bias.grad, linear.bias.grad)


def test_repacks_after_an_optimizer_step_and_load_state_dict():
    packed = PrepackedLinear.from_linear(_linear())
    x = torch.randn(8, 24)
    with torch.no_grad():
        before = packed(x)
    optimizer = torch.optim.SGD(packed.parameters(), lr=0.5)
    packed(x).sum().backward()
    optimizer.step()
    with torch.no_grad():
        after = packed(x)
        torch.testing.assert_close(after, F.linear(x, packed.weight, packed.bias))
        assert not torch.allclose(after, before)
        other = nn.Linear(24, 40)
        packed.load_state_dict(other.state_dict())
        torch.testing.assert_close(packed(x), other(x), atol=1e-5, rtol=1e-5)


def test_falls_back_to_linear_under_autocast():
    packed = PrepackedLinear.from_linear(_linear())
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = packed(torch.randn(4, 24))
    assert out.dtype == torch.bfloat16


def test_copy_and_pickle_after_packing():
    packed = PrepackedLinear.from_linear(_linear())
    x = torch.randn(4, 24)
    with torch.inference_mode():
        reference = packed(x)
    clone = copy.deepcopy(packed)
    buffer = io.BytesIO()
    torch.save(packed, buffer)  # whole module: the opaque packed copy must not be pickled
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    with torch.inference_mode():
        for module in (clone, loaded):
            torch.testing.assert_close(module(x), reference)


def test_prepacked_sepformer_keeps_outputs_and_state_dict():
    torch.manual_seed(0)
    model = SepFormer(**TINY).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    mix = torch.randn(2, 1500)
    with torch.inference_mode():
        reference = model(mix)
    packed = prepack_linear_layers(copy.deepcopy(model))
    assert not any(type(m) is nn.Linear for m in packed.modules())
    ffn = next(m for m in packed.modules() if isinstance(m, FeedForward))
    assert ffn.linear1.activation == "relu" and isinstance(ffn.activation, nn.Identity)
    with torch.inference_mode():
        torch.testing.assert_close(packed(mix), reference, atol=1e-5, rtol=1e-5)
    assert packed.state_dict().keys() == state.keys()
    for key, value in packed.state_dict().items():
        torch.testing.assert_close(value, state[key])
    # still trainable: the autograd path gives the original model's output too
    packed.train(), model.train()
    torch.testing.assert_close(packed(mix), model(mix), atol=1e-5, rtol=1e-5)


def test_classifier_from_pretrained_packs_and_keeps_probabilities(tmp_path):
    from audionets.hub import ModelMeta, build_from_config, save_pretrained
    from audionets.inference import Classifier

    config = {"task": "classification", "sample_rate": 8000, "labels": ["a", "b", "c"],
              "model": {"name": "attention_classifier", "num_classes": 3, "sample_rate": 8000,
                        "d_model": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32,
                        "frontend": {"name": "logmel", "n_mels": 16}}}
    torch.manual_seed(0)
    model = build_from_config(config, "test").eval()
    save_pretrained(model, ModelMeta("classification", 8000, ["a", "b", "c"], config), tmp_path)
    classifier = Classifier.from_pretrained(tmp_path)
    assert any(isinstance(m, PrepackedLinear) for m in classifier.model.modules())
    wav = torch.randn(2, 4000)
    with torch.inference_mode():
        expected = model(wav).softmax(dim=-1)
    torch.testing.assert_close(classifier.classify_batch(wav), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not int8_quantization_available(), reason="int8 quantization does not work "
                    "with this PyTorch (tests/test_fallbacks.py runs the float fallback)")
def test_unpack_restores_plain_layers_and_quantization_sees_them():
    from audionets.nn.prepack import unpack_linear_layers
    from audionets.nn.quantization import quantize_dynamic_int8

    torch.manual_seed(0)
    model = SepFormer(**TINY).eval()
    mix = torch.randn(1, 1500)
    with torch.inference_mode():
        reference = model(mix)
    packed = prepack_linear_layers(copy.deepcopy(model))
    # int8 quantization of a pre-packed model quantizes its linear layers like a plain model's
    quantized = quantize_dynamic_int8(packed)
    assert not any(isinstance(m, PrepackedLinear) for m in quantized.modules())
    assert type(quantized.masker.in_proj) is not nn.Linear  # a dynamically quantized Linear
    unpacked = unpack_linear_layers(packed)
    assert any(type(m) is nn.Linear for m in unpacked.modules())
    assert not any(isinstance(m, PrepackedLinear) for m in unpacked.modules())
    ffn = next(m for m in unpacked.modules() if isinstance(m, FeedForward))
    assert isinstance(ffn.activation, nn.ReLU)
    assert unpacked.state_dict().keys() == model.state_dict().keys()
    with torch.inference_mode():
        torch.testing.assert_close(unpacked(mix), reference, atol=1e-5, rtol=1e-5)


def test_layers_off_the_cpu_are_left_as_they_are():
    model = SepFormer(**TINY).to("meta")  # stands for CUDA: any device but the CPU
    prepack_linear_layers(model)
    assert not any(isinstance(m, PrepackedLinear) for m in model.modules())
    ffn = next(m for m in model.modules() if isinstance(m, FeedForward))
    assert isinstance(ffn.activation, nn.ReLU)
