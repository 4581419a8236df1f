"""ONNX operators for layers that ``torch.export`` cannot trace for every input length.

``torch.export`` unrolls (or loops over) an ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` along a time
axis whose length is computed from the input, and the loop does not survive sizes that are only
known at run time. ONNX has native ``LSTM``, ``GRU`` and ``RNN`` operators that take any
sequence length, so while ``torch.onnx.export`` runs, :func:`recurrent` emits them directly
(``torch.onnx.ops.symbolic``) with the PyTorch weights re-ordered to ONNX's gate layout;
:func:`recurrent_layer` emits one layer from weights already in that layout (the minimal gated
unit of :mod:`audionets.models.rnn` is an ONNX ``GRU`` whose reset gate is always open).
"""

from __future__ import annotations

import torch
from torch import nn

#: ONNX operator, PyTorch's gate blocks in ONNX's order, and the operator's extra attributes.
#: PyTorch stacks LSTM gates as (input, forget, cell, output), ONNX as (input, output, forget,
#: cell); GRU gates as (reset, update, new), ONNX as (update, reset, hidden), and PyTorch's GRU
#: applies the reset gate after the recurrent product (ONNX's linear_before_reset=1).
_OPERATORS = {
    nn.LSTM: ("LSTM", (0, 3, 1, 2), {}),
    nn.GRU: ("GRU", (1, 0, 2), {"linear_before_reset": 1}),
    nn.RNN: ("RNN", (0,), {}),
}


def exporting_onnx() -> bool:
    """Whether ``torch.onnx.export`` is tracing the current call."""
    if not torch.jit.is_scripting():  # TorchScript compiles none of this branch
        return torch.onnx.is_in_onnx_export()
    return False


def supports(module: nn.Module) -> bool:
    """Whether :func:`recurrent` can emit ``module`` as an ONNX operator."""
    return type(module) in _OPERATORS and not getattr(module, "proj_size", 0) and (
        not isinstance(module, nn.RNN) or module.nonlinearity == "tanh")


def _reorder(weight: torch.Tensor, order: tuple[int, ...]) -> torch.Tensor:
    blocks = weight.chunk(len(order))
    return torch.cat([blocks[i] for i in order])


def recurrent(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)[0]`` for an ``nn.LSTM`` / ``nn.GRU`` / tanh ``nn.RNN`` as ONNX operators,
    one per layer, from a zero initial state.

    ``x`` is ``[B, L, I]`` when ``module.batch_first`` else ``[L, B, I]``; so is the output,
    with ``D * hidden_size`` features (D = 2 if bidirectional). Dropout between layers is an
    identity (inference).
    """
    if not supports(module):
        raise NotImplementedError(f"no ONNX operator for {module}")
    op, order, attributes = _OPERATORS[type(module)]
    sequence = x.transpose(0, 1) if module.batch_first else x  # [L, B, I]
    directions = 2 if module.bidirectional else 1
    hidden = module.hidden_size
    gates = len(order)
    suffixes = ["", "_reverse"][:directions]
    for layer in range(module.num_layers):
        names = [f"l{layer}{suffix}" for suffix in suffixes]
        weights = torch.stack([_reorder(getattr(module, f"weight_ih_{n}"), order) for n in names])
        recurrent_weights = torch.stack([_reorder(getattr(module, f"weight_hh_{n}"), order)
                                         for n in names])
        if module.bias:
            bias = torch.stack([
                torch.cat((_reorder(getattr(module, f"bias_ih_{n}"), order),
                           _reorder(getattr(module, f"bias_hh_{n}"), order)))
                for n in names
            ])
        else:
            bias = sequence.new_zeros(directions, 2 * gates * hidden)
        sequence = recurrent_layer(op, sequence, weights, recurrent_weights, bias,
                                   module.bidirectional, **attributes)
    return sequence.transpose(0, 1) if module.batch_first else sequence


def recurrent_layer(op: str, sequence: torch.Tensor, weights: torch.Tensor,
                    recurrent_weights: torch.Tensor, bias: torch.Tensor, bidirectional: bool,
                    **attributes: int) -> torch.Tensor:
    """One ONNX ``LSTM`` / ``GRU`` / ``RNN`` operator from a zero initial state, weights in
    ONNX's layout and gate order.

    Shapes (D = 2 if ``bidirectional``, G gates, H hidden units): ``sequence[L, B, I]``,
    ``weights[D, G * H, I]``, ``recurrent_weights[D, G * H, H]``, ``bias[D, 2 * G * H]``
    (input then recurrent biases) ``-> [L, B, D * H]`` (the directions concatenated).
    """
    directions = 2 if bidirectional else 1
    hidden = recurrent_weights.shape[-1]
    length, batch = sequence.shape[0], sequence.shape[1]
    out = torch.onnx.ops.symbolic(
        f"::{op}", (sequence, weights, recurrent_weights, bias),
        {"hidden_size": hidden, "direction": "bidirectional" if bidirectional else "forward",
         **attributes},
        dtype=sequence.dtype, shape=(length, directions, batch, hidden), version=14,
    )  # [L, D, B, H]
    return out.permute(0, 2, 1, 3).reshape(length, batch, directions * hidden)
