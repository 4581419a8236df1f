"""Every optimizer of the config (``optimizer.name``) builds, steps as its update rule says,
and bad values are one-line ConfigErrors naming the dotted key."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audionets.errors import ConfigError
from audionets.training.config import config_from_dict, optimizer_config
from audionets.training.trainer import build_optimizer

W0 = np.array([1.0, -2.0, 0.5])
TARGET = np.array([0.3, 0.1, -0.4])
LR, WD = 0.1, 0.01


def _gradient(w: np.ndarray) -> np.ndarray:
    """Gradient of ``sum((w - TARGET) ** 2)`` plus the L2 penalty ``WD / 2 * ||w||^2``."""
    return 2 * (w - TARGET) + WD * w


def _expected_two_steps(name: str) -> np.ndarray:
    """Two steps of each update rule written out in NumPy (PyTorch's documented algorithms)."""
    w, state = W0.copy(), {}
    for _ in range(2):
        g = _gradient(w) if name != "adamw" else 2 * (w - TARGET)
        if name in ("sgd", "nesterov"):
            buf = g if "buf" not in state else 0.9 * state["buf"] + g
            state["buf"] = buf
            w = w - LR * (g + 0.9 * buf if name == "nesterov" else buf)
        elif name == "adagrad":
            state["sum"] = state.get("sum", 0) + g**2
            w = w - LR * g / (np.sqrt(state["sum"]) + 1e-10)
        elif name == "rmsprop":
            state["v"] = 0.9 * state.get("v", 0) + 0.1 * g**2
            w = w - LR * g / (np.sqrt(state["v"]) + 1e-8)
        else:  # adam, adamw
            t = state["t"] = state.get("t", 0) + 1
            state["m"] = 0.8 * state.get("m", 0) + 0.2 * g
            state["v"] = 0.99 * state.get("v", 0) + 0.01 * g**2
            if name == "adamw":
                w = w * (1 - LR * WD)  # decoupled weight decay
            m_hat, v_hat = state["m"] / (1 - 0.8**t), state["v"] / (1 - 0.99**t)
            w = w - LR * m_hat / (np.sqrt(v_hat) + 1e-8)
    return w


SETTINGS = {
    "sgd": {"name": "sgd"},  # momentum 0.9 by default
    "nesterov": {"name": "sgd", "momentum": 0.9, "nesterov": True},
    "adagrad": {"name": "adagrad"},
    "rmsprop": {"name": "rmsprop", "alpha": 0.9},
    "adam": {"name": "adam", "betas": [0.8, 0.99]},
    "adamw": {"name": "adamw", "betas": [0.8, 0.99]},
}


@pytest.mark.parametrize("label", list(SETTINGS))
def test_each_optimizer_builds_from_config_and_steps_as_its_update_rule(label):
    opt = optimizer_config({**SETTINGS[label], "lr": LR, "weight_decay": WD})
    w = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    optimizer = build_optimizer(opt, [w])
    for _ in range(2):
        optimizer.zero_grad()
        ((w - torch.tensor(TARGET)) ** 2).sum().backward()
        optimizer.step()
    np.testing.assert_allclose(w.detach().numpy(), _expected_two_steps(label), rtol=1e-12)


def test_rmsprop_momentum_defaults_to_zero_and_sgd_momentum_to_point_nine():
    rms = build_optimizer(optimizer_config({"name": "rmsprop"}), [torch.zeros(1)])
    sgd = build_optimizer(optimizer_config({"name": "sgd"}), [torch.zeros(1)])
    assert rms.defaults["momentum"] == 0 and sgd.defaults["momentum"] == 0.9
    assert type(build_optimizer(optimizer_config({"name": "rmsprop", "momentum": 0.5, "eps": 1e-6}),
                                [torch.zeros(1)])).__name__ == "RMSprop"


def test_optimizer_keys_come_through_the_training_config():
    raw = {"task": "classification", "model": {"name": "mlp"}, "data": {"name": "x"},
           "optimizer": {"name": "rmsprop", "lr": 0.01}}
    config = config_from_dict(raw, ["optimizer.alpha=0.9", "optimizer.momentum=0.5"])
    optimizer = build_optimizer(config.optimizer, [torch.zeros(2, requires_grad=True)])
    assert isinstance(optimizer, torch.optim.RMSprop)
    assert (optimizer.defaults["alpha"], optimizer.defaults["momentum"]) == (0.9, 0.5)


@pytest.mark.parametrize("override, message", [
    ("optimizer.lr=.inf", "optimizer.lr: must be a finite number > 0, got inf"),
    ("optimizer.lr=1e400", "optimizer.lr: must be a finite number > 0, got inf"),
    ("optimizer.lr=.nan", "optimizer.lr: must be a finite number > 0, got nan"),
    ("optimizer.lr=0", "optimizer.lr: must be a finite number > 0, got 0.0"),
    ("optimizer.lr=-0.1", "optimizer.lr: must be a finite number > 0, got -0.1"),
    ("optimizer.weight_decay=.inf",
     "optimizer.weight_decay: must be a finite number >= 0, got inf"),
    ("optimizer.weight_decay=-1e-4",
     "optimizer.weight_decay: must be a finite number >= 0, got -0.0001"),
    ("optimizer.betas=[2,-1]", "optimizer.betas[0]: must be in [0, 1), got 2.0"),
    ("optimizer.betas=[0.9,-1]", "optimizer.betas[1]: must be in [0, 1), got -1.0"),
    ("optimizer.betas=[0.9]", "optimizer.betas: expected two numbers [beta1, beta2], got [0.9]"),
    ("optimizer.betas=[0.9,x]", "optimizer.betas[1]: expected float, got 'x'"),
    ("optimizer.momentum=1", "optimizer.momentum: must be in [0, 1), got 1.0"),
    ("optimizer.momentum=-0.5", "optimizer.momentum: must be in [0, 1), got -0.5"),
    ("optimizer.alpha=1.5", "optimizer.alpha: must be in [0, 1), got 1.5"),
    ("optimizer.eps=0", "optimizer.eps: must be a finite number > 0, got 0.0"),
    ("optimizer.nesterov=true", "optimizer.nesterov: only sgd has Nesterov momentum, not adam; "
                                "set optimizer.name=sgd or optimizer.nesterov=false"),
    ("optimizer.name=nadam",
     "optimizer.name: 'nadam' is not one of: sgd, adagrad, rmsprop, adam, adamw"),
])
def test_bad_optimizer_values_are_one_line_errors_naming_the_key(override, message):
    raw = {"task": "classification", "model": {"name": "mlp"}, "data": {"name": "x"}}
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw, [override])
    assert str(err.value) == message


def test_nesterov_needs_momentum():
    with pytest.raises(ConfigError, match=r"^optimizer\.nesterov: needs optimizer\.momentum > 0"):
        optimizer_config({"name": "sgd", "nesterov": True, "momentum": 0})
