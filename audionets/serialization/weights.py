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
