"""Model weights into a built model, every misfit one line.

Shared by every path that puts saved weights into a model: :mod:`audionets.hub` (checkpoints,
model folders), a resumed training run and ``init_from``.
"""

from __future__ import annotations

import torch
from torch import nn

from audionets.errors import CheckpointError


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """``model.load_state_dict(state)`` with a one-line CheckpointError naming the first bad key."""
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"{where}: the weights are not a mapping of names to tensors; "
                              "pass weights that audionets wrote")
    expected = model.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise CheckpointError(f"{where}: weight {key!r} is missing; the weights do not match "
                                  "the model config")
        if value.is_floating_point() and not state[key].is_floating_point():
            raise CheckpointError(
                f"{where}: weight {key!r} holds {str(state[key].dtype).replace('torch.', '')} "
                "values where the model has real numbers; the weights are damaged or not "
                "this model's"
            )
        if state[key].is_floating_point() and not torch.isfinite(state[key]).all():
            raise CheckpointError(f"{where}: weight {key!r} holds NaN or Inf values; the "
                                  "training diverged or the file is damaged: use another "
                                  "checkpoint")
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{where}: weight {key!r} has shape {tuple(state[key].shape)} but the model "
                f"expects {tuple(value.shape)}; the weights do not match the model config"
            )
    extra = [k for k in state if k not in expected]
    if extra:
        raise CheckpointError(f"{where}: unexpected weight {extra[0]!r}; the weights do not match "
                              "the model config")
    model.load_state_dict(state)


def average_weights(states: list[dict[str, torch.Tensor]],
                    names: list[str]) -> dict[str, torch.Tensor]:
    """The element-wise mean of state dicts of one architecture (checkpoint averaging, a
    "model soup": Wortsman et al., 2022), computed in float64 and cast back.

    Floating-point entries, BatchNorm running statistics included, are averaged; integer
    entries (BatchNorm's ``num_batches_tracked``) are taken from the first. ``names[i]`` names
    ``states[i]`` in errors.

    Raises:
        CheckpointError: naming the source and the first key that is missing or has another
            shape than in the first state.
    """
    first = states[0]
    for state, name in zip(states[1:], names[1:]):
        for key, value in first.items():
            if key not in state or tuple(state[key].shape) != tuple(value.shape):
                raise CheckpointError(
                    f"{name}: weight {key!r} is missing or has another shape than in "
                    f"{names[0]}; only weights of one architecture can be averaged")
    out = {}
    for key, value in first.items():
        if value.is_floating_point():
            total = sum(state[key].double() for state in states)
            out[key] = (total / len(states)).to(value.dtype)
        else:
            out[key] = value.clone()
    return out
