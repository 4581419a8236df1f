"""ONNX operators for layers that ``torch.export`` cannot trace for every input length.

``torch.export`` unrolls (or loops over) an ``nn.LSTM`` along a time axis whose length is
computed from the input, and the loop does not survive sizes that are only known at run time.
ONNX has a native ``LSTM`` operator that takes any sequence length, so while
``torch.onnx.export`` runs, :func:`lstm` emits it directly (``torch.onnx.ops.symbolic``) with
the PyTorch weights re-ordered to ONNX's gate layout.
"""

from __future__ import annotations

import torch
from torch import nn

# PyTorch stacks the LSTM gates as (input, forget, cell, output); ONNX as (input, output,
# forget, cell)
_ONNX_GATE_ORDER = (0, 3, 1, 2)


def exporting_onnx() -> bool:
    """Whether ``torch.onnx.export`` is tracing the current call."""
    return torch.onnx.is_in_onnx_export()


def _gates_to_onnx(weight: torch.Tensor) -> torch.Tensor:
    return torch.cat([weight.chunk(4)[i] for i in _ONNX_GATE_ORDER])


def lstm(module: nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    """``module(x)[0]`` as ONNX ``LSTM`` operators, one per layer (no initial state).

    ``x`` is ``[B, L, I]`` when ``module.batch_first`` else ``[L, B, I]``; so is the output,
    with ``D * hidden_size`` features (D = 2 if bidirectional). Dropout between layers is an
    identity (inference).
    """
    if module.proj_size:
        raise NotImplementedError("ONNX export of an LSTM with proj_size is not supported")
    sequence = x.transpose(0, 1) if module.batch_first else x  # [L, B, I]
    directions = 2 if module.bidirectional else 1
    hidden = module.hidden_size
    suffixes = ["", "_reverse"][:directions]
    for layer in range(module.num_layers):
        names = [f"l{layer}{suffix}" for suffix in suffixes]
        weights = torch.stack([_gates_to_onnx(getattr(module, f"weight_ih_{n}")) for n in names])
        recurrent = torch.stack([_gates_to_onnx(getattr(module, f"weight_hh_{n}")) for n in names])
        if module.bias:
            bias = torch.stack([
                torch.cat((_gates_to_onnx(getattr(module, f"bias_ih_{n}")),
                           _gates_to_onnx(getattr(module, f"bias_hh_{n}"))))
                for n in names
            ])
        else:
            bias = sequence.new_zeros(directions, 8 * hidden)
        length, batch = sequence.shape[0], sequence.shape[1]
        out = torch.onnx.ops.symbolic(
            "::LSTM", (sequence, weights, recurrent, bias),
            {"hidden_size": hidden,
             "direction": "bidirectional" if module.bidirectional else "forward"},
            dtype=sequence.dtype, shape=(length, directions, batch, hidden), version=14,
        )  # [L, D, B, H]
        sequence = out.permute(0, 2, 1, 3).reshape(length, batch, directions * hidden)
    return sequence.transpose(0, 1) if module.batch_first else sequence
