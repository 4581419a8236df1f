"""The minimal gated unit against a NumPy implementation, and the recurrent-layer factory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from audionets.errors import ConfigError
from audionets.models import build_model
from audionets.models.classifiers import _pool_sequence
from audionets.models.rnn import CELLS, MGUCell, MinimalGatedUnit, build_recurrent


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_mgu_direction(cell: MGUCell, x: np.ndarray, h: np.ndarray, reverse: bool):
    """The course equations, one step at a time: x[B, T, I], h[B, H] -> out[B, T, H]."""
    hidden = cell.hidden_size
    w_ih = cell.weight_ih.detach().double().numpy()
    w_hh = cell.weight_hh.detach().double().numpy()
    bias = cell.bias.detach().double().numpy()
    U_f, U_h = w_ih[:hidden], w_ih[hidden:]
    W_f, W_h = w_hh[:hidden], w_hh[hidden:]
    b_f, b_h = bias[:hidden], bias[hidden:]
    out = np.zeros((x.shape[0], x.shape[1], hidden))
    steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
    for t in steps:
        f = _sigmoid(h @ W_f.T + x[:, t] @ U_f.T + b_f)
        h = f * h + (1.0 - f) * np.tanh(h @ W_h.T + x[:, t] @ U_h.T + b_h)
        out[:, t] = h
    return out


def _numpy_mgu(module: MinimalGatedUnit, x: np.ndarray, h0: np.ndarray):
    directions = 2 if module.bidirectional else 1
    finals = []
    for layer in range(module.num_layers):
        outs = []
        for d in range(directions):
            index = layer * directions + d
            out = _numpy_mgu_direction(module.cells[index], x, h0[index], reverse=d == 1)
            finals.append(out[:, 0] if d == 1 else out[:, -1])
            outs.append(out)
        x = np.concatenate(outs, axis=-1)
    return x, np.stack(finals)


@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, False), (2, True)])
def test_mgu_matches_numpy_equations(num_layers, bidirectional):
    module = MinimalGatedUnit(3, 5, num_layers=num_layers, bidirectional=bidirectional).double()
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    h0 = torch.randn(num_layers * (2 if bidirectional else 1), 2, 5, dtype=torch.float64)
    out, h_n = module(x, h0)
    expected_out, expected_h = _numpy_mgu(module, x.numpy(), h0.numpy())
    np.testing.assert_allclose(out.detach().numpy(), expected_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n.detach().numpy(), expected_h, rtol=1e-10, atol=1e-12)


def test_mgu_cell_step_matches_numpy_and_defaults_to_zero_state():
    cell = MGUCell(4, 6).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    expected = _numpy_mgu_direction(cell, x[:, None].numpy(), np.zeros((3, 6)), reverse=False)
    np.testing.assert_allclose(cell(x).detach().numpy(), expected[:, 0], rtol=1e-10)


def test_mgu_forget_gate_one_keeps_the_state():
    cell = MGUCell(2, 3)
    with torch.no_grad():
        cell.bias[:3].fill_(50.0)  # b_f large: f = 1, h_t = h_{t-1}
    h = torch.randn(4, 3)
    torch.testing.assert_close(cell(torch.randn(4, 2), h), h)


def test_mgu_batch_first_false_and_gradients():
    module = MinimalGatedUnit(3, 4, num_layers=2, batch_first=False, bidirectional=True)
    x = torch.randn(6, 2, 3, requires_grad=True)  # [T, B, I]
    out, h_n = module(x)
    assert out.shape == (6, 2, 8) and h_n.shape == (4, 2, 4)
    batch_first = MinimalGatedUnit(3, 4, num_layers=2, bidirectional=True)
    batch_first.load_state_dict(module.state_dict())
    torch.testing.assert_close(batch_first(x.transpose(0, 1))[0], out.transpose(0, 1))
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_factory_shapes_and_gradients(cell, bidirectional):
    rnn = build_recurrent(cell, 5, 6, num_layers=2, bidirectional=bidirectional, dropout=0.1)
    x = torch.randn(3, 9, 5, requires_grad=True)
    out, _ = rnn(x)
    assert out.shape == (3, 9, 6 * (2 if bidirectional else 1))
    out.pow(2).sum().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in rnn.parameters())


def test_lstm_starts_with_forget_bias_one():
    lstm = build_recurrent("lstm", 3, 4, num_layers=2, bidirectional=True)
    for name, param in lstm.named_parameters():
        if name.startswith("bias_ih"):
            assert torch.all(param[4:8] == 1.0), name
        if name.startswith("bias_hh"):
            assert torch.all(param[4:8] == 0.0), name


def test_lstm_forget_bias_one_keeps_sigmoid_one_of_the_cell_state():
    layer = build_recurrent("lstm", 3, 4)
    with torch.no_grad():
        for name, param in layer.named_parameters():
            if "weight" in name:
                param.zero_()
        layer.bias_ih_l0[:4] = 50.0  # input gate open
        layer.bias_ih_l0[8:12] = 50.0  # candidate tanh(50) = 1
        layer.bias_hh_l0[:4] = 0.0
        layer.bias_hh_l0[8:12] = 0.0
    _, (_, c1) = layer(torch.zeros(1, 1, 3))
    _, (_, c2) = layer(torch.zeros(1, 2, 3))
    torch.testing.assert_close(c1, torch.ones_like(c1))
    torch.testing.assert_close(c2, torch.sigmoid(torch.tensor(1.0)) * c1 + 1.0)


def test_unknown_cell_is_a_config_error():
    with pytest.raises(ValueError, match="^unknown cell 'transformer'"):
        build_recurrent("transformer", 3, 4)
    with pytest.raises(ConfigError, match="^unknown model.cell 'transformer'"):
        build_model({"name": "rnn_classifier", "num_classes": 2, "sample_rate": 8000,
                     "cell": "transformer"})


@pytest.mark.parametrize("cell", ["gru", "lstm", "mgu"])
def test_last_pooling_takes_each_directions_final_state(cell):
    rnn = build_recurrent(cell, 4, 5, num_layers=2, bidirectional=True)
    out, state = rnn(torch.randn(2, 8, 4))
    h_n = state[0] if cell == "lstm" else state
    torch.testing.assert_close(
        _pool_sequence(out, "last", bidirectional=True), torch.cat((h_n[-2], h_n[-1]), dim=-1)
    )
    torch.testing.assert_close(_pool_sequence(out, "mean", True), out.mean(1))


def test_gru_pooling_last_unidirectional_is_final_hidden_state():
    gru = nn.GRU(3, 4, batch_first=True)
    out, h_n = gru(torch.randn(2, 5, 3))
    torch.testing.assert_close(_pool_sequence(out, "last", False), h_n[-1])
