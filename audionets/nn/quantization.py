"""Post-training dynamic int8 quantization for CPU inference."""

from __future__ import annotations

import copy
import warnings

from torch import nn


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` whose ``nn.Linear`` and ``nn.LSTM`` layers run in int8.

    Weights are quantized once (per tensor, symmetric int8); activations are quantized on the
    fly per batch, so no calibration data is needed. The copy runs on CPU only and cannot be
    trained; attributes such as ``num_sources`` and ``sample_rate`` are kept. Convolutions and
    norms stay in float32. Pre-packed linear layers (:mod:`audionets.nn.prepack`) are quantized
    like plain ones.
    """
    import torch.ao.quantization as tq

    from audionets.nn.prepack import unpack_linear_layers

    # quantize_dynamic swaps only modules whose type is exactly nn.Linear
    quantized = unpack_linear_layers(copy.deepcopy(model).cpu().eval())
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao; the eager API still works
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        return tq.quantize_dynamic(quantized, {nn.Linear, nn.LSTM}, inplace=True)
