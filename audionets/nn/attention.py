"""Transformer encoder built on ``torch.nn.functional.scaled_dot_product_attention``.

Sequences are batch-first ``[B, L, D]``. The attention projects queries, keys and values with
one fused ``[3D, D]`` linear layer (the layout of ``nn.MultiheadAttention.in_proj_weight``) and
never materialises the attention weights, so PyTorch can use its fused kernels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audionets.nn.activations import get_activation
from audionets.nn.positional import sinusoidal_encoding


def add_residual(branch: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """``branch + residual``, written into ``branch`` when autograd is off.

    In inference the in-place add saves an allocation. Under autograd it would cost more than
    it saves: ``branch`` is nearly always a view (a Linear output reshaped), and an in-place op
    on a view makes the backward pass clone and copy the base tensor (about 10 % of a CPU
    training step of the published SepFormer).
    """
    return branch + residual if torch.is_grad_enabled() else branch.add_(residual)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention: ``[B, L, D] -> [B, L, D]``.

    Args:
        d_model: feature size D (divisible by ``nhead``).
        nhead: number of heads.
        dropout: dropout on the attention probabilities (training only).
    """

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % nhead:
            raise ValueError(f"d_model ({d_model}) must be divisible by nhead ({nhead})")
        self.nhead = nhead
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        # the initialisation of nn.MultiheadAttention (Xavier weights, zero biases)
        nn.init.xavier_uniform_(self.qkv.weight)
        nn.init.zeros_(self.qkv.bias)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, d_model = x.shape
        head_dim = d_model // self.nhead
        # [B, L, 3D] -> 3 x [B, H, L, D/H]
        qkv = self.qkv(x).view(batch, length, 3, self.nhead, head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attended = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(attended.transpose(1, 2).reshape(batch, length, d_model))


class FeedForward(nn.Module):
    """Position-wise feed-forward ``Linear(D, F) -> activation -> dropout -> Linear(F, D)``
    (``activation``: any name :func:`~audionets.nn.activations.get_activation` knows)."""

    def __init__(self, d_model: int, d_ffn: int, activation: str = "relu", dropout: float = 0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.activation = get_activation(activation)
        self.relu = isinstance(self.activation, nn.ReLU)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.linear1(x)
        # in inference, ReLU in place saves one [.., d_ffn] buffer; under autograd it would be
        # an in-place op on a view (see add_residual), so it stays out of place there
        if self.relu and not torch.is_grad_enabled():
            hidden = hidden.relu_()
        else:
            hidden = self.activation(hidden)
        return self.linear2(self.dropout(hidden))


class TransformerEncoderLayer(nn.Module):
    """Self-attention + feed-forward with residuals, ``[B, L, D] -> [B, L, D]``.

    ``norm_before=True`` is the pre-norm layer ``x + f(norm(x))``; ``False`` is the original
    post-norm layer ``norm(x + f(x))``. LayerNorms use eps 1e-6 (as SpeechBrain's).
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        d_ffn: int,
        dropout: float = 0.0,
        activation: str = "relu",
        norm_before: bool = True,
    ) -> None:
        super().__init__()
        self.norm_before = norm_before
        self.attn = MultiHeadSelfAttention(d_model, nhead, dropout)
        self.ffn = FeedForward(d_model, d_ffn, activation, dropout)
        self.norm1 = nn.LayerNorm(d_model, eps=1e-6)
        self.norm2 = nn.LayerNorm(d_model, eps=1e-6)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_before:
            x = add_residual(self.dropout1(self.attn(self.norm1(x))), x)
            return add_residual(self.dropout2(self.ffn(self.norm2(x))), x)
        x = self.norm1(add_residual(self.dropout1(self.attn(x)), x))
        return self.norm2(add_residual(self.dropout2(self.ffn(x)), x))


class TransformerEncoder(nn.Module):
    """A stack of :class:`TransformerEncoderLayer` and a final LayerNorm, ``[B, L, D] -> [B, L, D]``.

    With ``positional_encoding`` the sinusoidal table of length L is added to the input first
    (computed on the fly, any length). In CPU inference (no autograd) the batch of sequences is
    processed ``group_frames`` frames at a time (0: all at once).
    """

    def __init__(
        self,
        num_layers: int,
        d_model: int,
        nhead: int,
        d_ffn: int,
        dropout: float = 0.0,
        activation: str = "relu",
        norm_before: bool = True,
        positional_encoding: bool = True,
    ) -> None:
        super().__init__()
        if positional_encoding and d_model % 2:
            raise ValueError(f"positional encoding needs an even d_model, got {d_model}")
        self.positional_encoding = positional_encoding
        self.group_frames = 4096
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(d_model, nhead, d_ffn, dropout, activation, norm_before)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.positional_encoding:
            x = x + sinusoidal_encoding(x.shape[1], x.shape[2], x.device, x.dtype)
        if not torch.jit.is_scripting():  # a compiled or exported graph must not fix the group
            if not (torch.is_grad_enabled() or x.device.type != "cpu" or self.group_frames <= 0
                    or torch.compiler.is_compiling()):
                return self._grouped_layers(x)
        return self._layers(x)

    def _grouped_layers(self, x: torch.Tensor) -> torch.Tensor:
        # CPU inference: the sequences are independent, so run all layers on a group of them
        # at a time (same result); smaller activations stay in cache and are cheaper to allocate
        group = max(1, self.group_frames // x.shape[1])
        if group >= x.shape[0]:
            return self._layers(x)
        return torch.cat([self._layers(part) for part in x.split(group)])

    def _layers(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)
