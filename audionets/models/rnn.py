"""The minimal gated unit (MGU) and a factory for the recurrent layers classifiers use.

MGU (Zhou et al., 2016, "Minimal Gated Unit for Recurrent Neural Networks") has a single
forget gate. We implement the form taught in the course:

.. math::

    f_t &= \\sigma(W_f h_{t-1} + U_f x_t + b_f) \\\\
    h_t &= f_t \\odot h_{t-1} + (1 - f_t) \\odot \\tanh(W_h h_{t-1} + U_h x_t + b_h)

Note: the original paper also gates the recurrent input of the candidate,
:math:`\\tanh(W_h (f_t \\odot h_{t-1}) + U_h x_t + b_h)`; the course (and this module) feeds
:math:`h_{t-1}` to the candidate directly, which lets both recurrent products be computed in
one matrix multiply per step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from audionets.errors import ArgumentError
from audionets.nn import onnx_ops

CELLS = ("rnn", "mgu", "gru", "lstm")
#: ONNX ``GRU`` reset-gate bias that stands for an MGU: sigmoid(30) is 1.0 in float32, so the
#: GRU's candidate sees the whole previous state, as the MGU's does
_OPEN_RESET_GATE = 30.0


class MGUCell(nn.Module):
    """One MGU step: ``(x[B, input_size], h[B, hidden_size]) -> h'[B, hidden_size]``.

    Parameters (names follow :class:`torch.nn.GRUCell`; rows are ``[f; candidate]``):
    ``weight_ih [2H, I]`` holds ``U_f; U_h``, ``weight_hh [2H, H]`` holds ``W_f; W_h``,
    ``bias [2H]`` holds ``b_f; b_h``.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(2 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(2 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(2 * hidden_size)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)), as PyTorch's recurrent layers."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    def input_projection(self, x: torch.Tensor) -> torch.Tensor:
        """``U x + b`` for any leading shape: ``[..., I] -> [..., 2H]`` (done once per sequence)."""
        return nn.functional.linear(x, self.weight_ih, self.bias)

    def step(self, projected: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One step from the precomputed input projection ``[B, 2H]`` and ``h[B, H]``."""
        gate_in, cand_in = projected.chunk(2, dim=-1)
        gate_rec, cand_rec = nn.functional.linear(h, self.weight_hh).chunk(2, dim=-1)
        f = torch.sigmoid(gate_rec + gate_in)
        return f * h + (1.0 - f) * torch.tanh(cand_rec + cand_in)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        return self.step(self.input_projection(x), h)

    def sequence(self, x: torch.Tensor, h: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """Run over ``x[B, T, I]`` from ``h[B, H]`` (backwards in time if ``reverse``);
        the states ``[B, T, H]`` in time order."""
        projected = self.input_projection(x)  # [B, T, 2H], one product for all steps
        length = x.shape[1]
        outputs: list[torch.Tensor] = []
        for i in range(length):
            h = self.step(projected[:, length - 1 - i if reverse else i], h)
            outputs.append(h)
        if reverse:
            outputs.reverse()
        return torch.stack(outputs, dim=1)

    def onnx_gru_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This cell as an ONNX ``GRU`` direction (gates update, reset, hidden;
        ``linear_before_reset=1``): ``W[3H, I], R[3H, H], B[6H]``.

        The MGU's forget gate is the GRU's update gate z (``h' = z h + (1 - z) candidate``
        in both), and a reset gate with zero weights and a bias of :data:`_OPEN_RESET_GATE`
        is always 1, which leaves the GRU's candidate ``tanh(W_h x + b_h + R_h h)``: the MGU's.
        """
        hidden = self.hidden_size
        gate_in, cand_in = self.weight_ih.chunk(2)
        gate_rec, cand_rec = self.weight_hh.chunk(2)
        weights = torch.cat((gate_in, torch.zeros_like(gate_in), cand_in))
        recurrent = torch.cat((gate_rec, torch.zeros_like(gate_rec), cand_rec))
        bias = self.bias if self.bias is not None else self.weight_ih.new_zeros(2 * hidden)
        gate_bias, cand_bias = bias.chunk(2)
        bias = torch.cat((gate_bias, torch.full_like(gate_bias, _OPEN_RESET_GATE), cand_bias,
                          bias.new_zeros(3 * hidden)))
        return weights, recurrent, bias


class MinimalGatedUnit(nn.Module):
    """A multi-layer, optionally bidirectional MGU with the interface of :class:`torch.nn.GRU`.

    Shapes (``batch_first=True``, D = 2 if bidirectional else 1):
    ``x[B, T, input_size], h0[num_layers * D, B, H] (optional)`` ->
    ``(output[B, T, D * H], h_n[num_layers * D, B, H])``.
    With ``batch_first=False`` the sequences are ``[T, B, ...]`` instead.
    ``dropout`` is applied to the outputs of every layer but the last, as in PyTorch.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.batch_first = batch_first
        self.bidirectional = bidirectional
        directions = 2 if bidirectional else 1
        self.cells = nn.ModuleList(
            MGUCell(input_size if layer == 0 else directions * hidden_size, hidden_size, bias)
            for layer in range(num_layers)
            for _ in range(directions)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.batch_first:
            x = x.transpose(0, 1)
        if not torch.jit.is_scripting():
            if onnx_ops.exporting_onnx() and h0 is None:  # one ONNX GRU per layer, any length
                x, finals = self._onnx_layers(x)
                return (x if self.batch_first else x.transpose(0, 1)), finals
        directions = 2 if self.bidirectional else 1
        if h0 is None:
            h0 = x.new_zeros(self.num_layers * directions, x.shape[0], self.hidden_size)
        finals: list[torch.Tensor] = []
        outs: list[torch.Tensor] = []
        for index, cell in enumerate(self.cells):  # layer by layer, forward then backward
            reverse = index % directions == 1
            out = cell.sequence(x, h0[index], reverse)
            finals.append(out[:, 0] if reverse else out[:, -1])
            outs.append(out)
            if len(outs) == directions:  # the layer is complete: the next one's input
                x = torch.cat(outs, dim=-1)
                outs = []
                if index < len(self.cells) - 1:
                    x = self.dropout(x)
        if not self.batch_first:
            x = x.transpose(0, 1)
        return x, torch.stack(finals, dim=0)

    def _onnx_layers(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward`` from a zero state as ONNX ``GRU`` operators (export only):
        ``x[B, T, I] -> (output[B, T, D * H], h_n[num_layers * D, B, H])``."""
        directions = 2 if self.bidirectional else 1
        hidden = self.hidden_size
        sequence = x.transpose(0, 1)  # [T, B, I]
        finals = []
        for layer in range(self.num_layers):
            cells = [self.cells[layer * directions + d] for d in range(directions)]
            weights, recurrent, bias = (torch.stack(parts) for parts in
                                        zip(*(cell.onnx_gru_weights() for cell in cells)))
            sequence = onnx_ops.recurrent_layer("GRU", sequence, weights, recurrent, bias,
                                                self.bidirectional, linear_before_reset=1)
            finals.append(sequence[-1, :, :hidden])
            if self.bidirectional:
                finals.append(sequence[0, :, hidden:])
        return sequence.transpose(0, 1), torch.stack(finals)


def build_recurrent(
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
    where: str = "cell",
) -> nn.Module:
    """A batch-first recurrent layer ``x[B, T, I] -> (out[B, T, D * H], state)``.

    ``cell`` is ``"rnn"`` (tanh), ``"mgu"``, ``"gru"`` or ``"lstm"``. LSTMs start with a
    forget-gate bias of +1 (Gers et al., 2000; Jozefowicz et al., 2015), so that they keep
    their cell state by default; they learn long dependencies much sooner that way.
    """
    key = str(cell).lower()
    kwargs = dict(
        num_layers=num_layers, batch_first=True, bidirectional=bidirectional,
        dropout=dropout if num_layers > 1 else 0.0,
    )
    if key == "mgu":
        return MinimalGatedUnit(input_size, hidden_size, **kwargs)
    if key == "rnn":
        return nn.RNN(input_size, hidden_size, nonlinearity="tanh", **kwargs)
    if key == "gru":
        return nn.GRU(input_size, hidden_size, **kwargs)
    if key == "lstm":
        lstm = nn.LSTM(input_size, hidden_size, **kwargs)
        init_forget_bias(lstm, 1.0)
        return lstm
    raise ArgumentError(f"unknown {where} {cell!r}; choose one of: {', '.join(CELLS)}", where)


@torch.no_grad()
def init_forget_bias(lstm: nn.LSTM, value: float) -> None:
    """Set the forget-gate part of every ``bias_ih`` to ``value`` and of ``bias_hh`` to 0.

    PyTorch orders the gates ``input, forget, cell, output``, so the forget gate is rows
    ``[H, 2H)``; the two biases are added, so the effective forget bias is ``value``.
    """
    hidden = lstm.hidden_size
    for name, param in lstm.named_parameters():
        if name.startswith("bias_"):
            param[hidden: 2 * hidden] = value if name.startswith("bias_ih") else 0.0
