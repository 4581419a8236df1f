"""Post-training dynamic int8 quantization for CPU inference.

It uses PyTorch's eager ``torch.ao.quantization.quantize_dynamic``, which PyTorch has deprecated
in favour of torchao (not a dependency: torchao has no dynamic int8 LSTM). So that a PyTorch
release that drops or breaks it degrades speed, never correctness, it is probed once per
process (:func:`int8_quantization_available`); without it :func:`quantize_dynamic_int8` warns
in one line and returns the float32 model.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable

import torch
from torch import nn

#: the layer types quantized
_QUANTIZED_TYPES = {nn.Linear, nn.LSTM}


def _torch_quantize_dynamic(model: nn.Module) -> nn.Module:
    """``torch.ao.quantization.quantize_dynamic`` of ``model``'s Linear and LSTM layers, in place."""
    import torch.ao.quantization as tq

    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao; the eager API still works, and
        # the probe below notices the day it does not
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        return tq.quantize_dynamic(model, _QUANTIZED_TYPES, inplace=True)


def _quantization_works(quantize: Callable[[nn.Module], nn.Module]) -> bool:
    """Whether ``quantize`` swaps a Linear and an LSTM for int8 layers whose outputs stay close
    to float32 on a small probe. Any error counts as "does not work"."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        probe = nn.ModuleDict({"linear": nn.Linear(8, 4), "lstm": nn.LSTM(8, 4, batch_first=True)})
        x = torch.randn(2, 5, 8, generator=generator)
        reference = probe["linear"](x), probe["lstm"](x)[0]
        try:
            quantized = quantize(copy.deepcopy(probe).eval())
            swapped = all(type(quantized[name]) not in _QUANTIZED_TYPES
                          for name in ("linear", "lstm"))
            outputs = quantized["linear"](x), quantized["lstm"](x)[0]
        except Exception:  # noqa: BLE001 - a deprecated API failing in any way means "not available"
            return False
    return swapped and all(torch.allclose(out, ref, atol=0.05)
                           for out, ref in zip(outputs, reference))


@functools.cache
def int8_quantization_available() -> bool:
    """Whether this PyTorch's dynamic int8 quantization works (checked once per process)."""
    return _quantization_works(_torch_quantize_dynamic)


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` whose ``nn.Linear`` and ``nn.LSTM`` layers run in int8.

    Weights are quantized once (per tensor, symmetric int8); activations are quantized on the
    fly per batch, so no calibration data is needed. The copy runs on CPU only and cannot be
    trained; attributes such as ``num_sources`` and ``sample_rate`` are kept. Convolutions and
    norms stay in float32. Pre-packed linear layers (:mod:`audionets.nn.prepack`) are quantized
    like plain ones. Where int8 quantization does not work (:func:`int8_quantization_available`)
    the copy stays float32, with a ``RuntimeWarning``.
    """
    from audionets.nn.prepack import unpack_linear_layers

    copied = copy.deepcopy(model).cpu().eval()
    if not int8_quantization_available():
        warnings.warn("int8 quantization does not work with this PyTorch "
                      f"({torch.__version__}); running in float32 instead",
                      RuntimeWarning, stacklevel=2)
        return copied
    # quantize_dynamic swaps only modules whose type is exactly nn.Linear
    return _torch_quantize_dynamic(unpack_linear_layers(copied))
