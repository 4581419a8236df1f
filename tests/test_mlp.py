"""MLP and ResidualMLP: shapes, residual wiring, gradients and learning XOR."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from audionets.errors import ConfigError
from audionets.models import build_model
from audionets.models.mlp import MLP, ResidualMLP

XOR_X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = torch.tensor([0, 1, 1, 0])


@pytest.mark.parametrize("name", ["mlp", "residual_mlp"])
@pytest.mark.parametrize("depth", [0, 1, 3])
def test_shapes_and_gradients(name, depth):
    model = build_model({"name": name, "in_features": 5, "num_classes": 3, "width": 8,
                         "depth": depth, "activation": "gelu"})
    x = torch.randn(4, 5)
    out = model(x)
    assert out.shape == (4, 3)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_mlp_depth_zero_is_linear():
    model = MLP(4, 2, depth=0)
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    torch.testing.assert_close(model(x + y) + model(torch.zeros(1, 4)), model(x) + model(y))


def test_residual_mlp_block_adds_the_identity():
    model = ResidualMLP(2, 2, width=4, depth=1, activation="relu", residual=True)
    plain = ResidualMLP(2, 2, width=4, depth=1, activation="relu", residual=False)
    plain.load_state_dict(model.state_dict())
    h = torch.randn(3, 4)
    block, plain_block = model.blocks[0], plain.blocks[0]
    torch.testing.assert_close(block(h), h + torch.relu(block.linear(h)))
    torch.testing.assert_close(plain_block(h), torch.relu(block.linear(h)))


def test_deep_residual_tanh_keeps_first_layer_gradient_larger_than_plain():
    torch.manual_seed(0)
    residual = ResidualMLP(2, 2, width=16, depth=20, activation="sigmoid", residual=True)
    plain = ResidualMLP(2, 2, width=16, depth=20, activation="sigmoid", residual=False)
    plain.load_state_dict(residual.state_dict())
    x = torch.randn(64, 2)
    y = torch.randint(0, 2, (64,))
    norms = []
    for model in (residual, plain):
        nn.functional.cross_entropy(model(x), y).backward()
        norms.append(model.blocks[0].linear.weight.grad.norm().item())
    assert norms[0] > 100 * norms[1]


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_two_layer_network_learns_xor(activation):
    torch.manual_seed(1)
    model = MLP(2, 2, width=8, depth=1, activation=activation)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(400):
        loss = nn.functional.cross_entropy(model(XOR_X), XOR_Y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.equal(model(XOR_X).argmax(-1), XOR_Y)


def test_linear_model_cannot_learn_xor():
    model = MLP(2, 2, depth=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        loss = nn.functional.cross_entropy(model(XOR_X), XOR_Y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert (model(XOR_X).argmax(-1) == XOR_Y).sum() <= 3


@pytest.mark.parametrize("kwargs, match", [
    (dict(width=0), "model.width"), (dict(depth=-1), "model.depth"),
    (dict(activation="step"), "model.activation 'step'"), (dict(height=3), "model.height"),
])
def test_bad_config_is_a_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_model({"name": "mlp", "in_features": 2, "num_classes": 2, **kwargs})
