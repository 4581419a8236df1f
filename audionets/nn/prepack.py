"""Linear layers with weights pre-packed for oneDNN: faster fp32 inference on CPU.

``nn.Linear`` on CPU runs a BLAS GEMM on the weight as stored and adds the bias by first
copying it into every row of the output. oneDNN can instead reorder the weight once into the
blocked layout its GEMM kernel reads, and add the bias (and a ReLU) inside the kernel. On the
published SepFormer this makes fp32 CPU inference about 1.2x faster with the same result to
float rounding (``benchmarks/sepformer_inference.py``). It is what ``torch.compile``'s CPU
backend does with frozen weights, without a compile step.

:class:`PrepackedLinear` is an ``nn.Linear`` (same parameters, same state dict) that uses the
packed copy only where it can: float32 CPU input with autograd off, on a PyTorch whose private
oneDNN operators pass a probe (:func:`prepack_available`). Anywhere else (training, CUDA,
autocast, another dtype, a PyTorch that changed those operators) it is an ordinary ``nn.Linear``. The packed copy is rebuilt
when the weight changes, so an optimizer step or ``load_state_dict`` never leaves it stale.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

_FUSED_ACTIVATIONS = ("relu",)


def _packed_linear_works(reorder, linear_pointwise) -> bool:
    """Whether the packed-linear operators ``reorder`` and ``linear_pointwise`` run and give
    ``F.linear``'s result on a small probe (with bias and fused ReLU, and without bias).

    They are private oneDNN operators (``torch.ops.mkldnn._*``) that a PyTorch release may
    change or remove; any error or a wrong result makes the layers plain ``nn.Linear``.
    """
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 5, generator=generator)
    bias = torch.randn(6, generator=generator)
    x = torch.randn(2, 3, 5, generator=generator)
    try:
        with torch.no_grad():
            packed = reorder(weight, None)
            fused = linear_pointwise(x, packed, bias, "relu", [], "")
            plain = linear_pointwise(x, packed, None, "none", [], "")
        return (torch.allclose(fused, F.relu(F.linear(x, weight, bias)), atol=1e-5)
                and torch.allclose(plain, F.linear(x, weight), atol=1e-5))
    except Exception:  # noqa: BLE001 - any failure of a private operator means "not available"
        return False


@functools.cache
def prepack_available() -> bool:
    """Whether this PyTorch build has oneDNN and its packed-linear operators, and they work.

    Checked once per process. Without them :func:`prepack_linear_layers` leaves models as they
    are and :class:`PrepackedLinear` runs as ``nn.Linear``: slower, never wrong.
    """
    mkldnn = torch.ops.mkldnn
    return (torch.backends.mkldnn.is_available()
            and hasattr(mkldnn, "_reorder_linear_weight") and hasattr(mkldnn, "_linear_pointwise")
            and _packed_linear_works(mkldnn._reorder_linear_weight, mkldnn._linear_pointwise))


# whether CPU autocast is on, resolved once (it is asked on every forward)
try:
    torch.is_autocast_enabled("cpu")
    _autocast_on_cpu = functools.partial(torch.is_autocast_enabled, "cpu")
except TypeError:  # torch < 2.4: no device argument yet
    _autocast_on_cpu = torch.is_autocast_cpu_enabled


def _sharing_parameters(new: nn.Linear, old: nn.Linear) -> nn.Linear:
    """``new`` (built on the meta device) with ``old``'s weight, bias and training mode."""
    new.weight, new.bias = old.weight, old.bias
    return new.train(old.training)


def _version(tensor: torch.Tensor) -> int:
    try:
        return tensor._version
    except RuntimeError:  # an inference tensor has no version counter (and cannot change)
        return -1


class PrepackedLinear(nn.Linear):
    """``y = activation(x W^T + b)`` with ``W`` pre-packed for oneDNN, ``[..., in] -> [..., out]``.

    Args:
        in_features, out_features, bias: as ``nn.Linear``.
        activation: ``None`` or ``"relu"``, applied after the bias (inside the kernel).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 activation: str | None = None, device=None, dtype=None) -> None:
        if activation not in (None, *_FUSED_ACTIVATIONS):
            raise ValueError(f"activation must be None or one of {_FUSED_ACTIVATIONS}, "
                             f"got {activation!r}")
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.activation = activation
        self._packed: torch.Tensor | None = None
        self._packed_key: tuple | None = None

    @classmethod
    def from_linear(cls, linear: nn.Linear, activation: str | None = None) -> "PrepackedLinear":
        """A ``PrepackedLinear`` that shares ``linear``'s weight and bias parameters."""
        return _sharing_parameters(cls(linear.in_features, linear.out_features,
                                       linear.bias is not None, activation, device="meta"),
                                   linear)

    def extra_repr(self) -> str:
        fused = f", activation={self.activation}" if self.activation else ""
        return super().extra_repr() + fused

    def _uses_packed(self, x: torch.Tensor) -> bool:
        return (x.device.type == "cpu" and x.dtype == torch.float32
                and self.weight.dtype == torch.float32 and not torch.is_grad_enabled()
                and not _autocast_on_cpu() and prepack_available())

    def _packed_weight(self) -> torch.Tensor:
        key = (self.weight.data_ptr(), _version(self.weight))
        if self._packed is None or self._packed_key != key:
            with torch.no_grad():
                self._packed = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach(), None)
            self._packed_key = key
        return self._packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._uses_packed(x):
            bias = None if self.bias is None else self.bias.detach()
            return torch.ops.mkldnn._linear_pointwise(
                x, self._packed_weight(), bias, self.activation or "none", [], "")
        y = F.linear(x, self.weight, self.bias)
        return F.relu(y) if self.activation == "relu" else y

    def __getstate__(self) -> dict:
        # the packed copy is an opaque oneDNN tensor that can be neither copied nor pickled;
        # a copy packs its own on first use
        state = self.__dict__.copy()
        state["_packed"] = state["_packed_key"] = None
        return state


def prepack_linear_layers(model: nn.Module) -> nn.Module:
    """Replace, in place, every plain ``nn.Linear`` of ``model`` whose weight is on the CPU by a
    :class:`PrepackedLinear` sharing its parameters; returns ``model``. Layers on another device
    would never use the packed copy and are left as they are.

    The feed-forward blocks of :mod:`audionets.nn.attention` also get their ReLU fused into
    the first layer. Parameter names, the state dict and every output (to float rounding) stay
    the same. Without oneDNN (see :func:`prepack_available`) the model is returned unchanged.
    :func:`unpack_linear_layers` undoes it.
    """
    if not prepack_available():
        return model
    from audionets.nn.attention import FeedForward

    def packable(layer: nn.Module) -> bool:
        return type(layer) is nn.Linear and layer.weight.device.type == "cpu"

    for module in list(model.modules()):
        if isinstance(module, FeedForward) and packable(module.linear1) \
                and isinstance(module.activation, nn.ReLU):
            module.linear1 = PrepackedLinear.from_linear(module.linear1, activation="relu")
            module.activation = nn.Identity()
        for name, child in list(module.named_children()):
            if packable(child):
                setattr(module, name, PrepackedLinear.from_linear(child))
    return model


def unpack_linear_layers(model: nn.Module) -> nn.Module:
    """Undo :func:`prepack_linear_layers` in place: every :class:`PrepackedLinear` becomes a
    plain ``nn.Linear`` sharing its parameters (a fused ReLU goes back to its feed-forward
    block); returns ``model``. Tools that match ``type(m) is nn.Linear``, such as dynamic
    quantization, need this.
    """
    from audionets.nn.attention import FeedForward

    for module in list(model.modules()):
        if isinstance(module, FeedForward) and isinstance(module.linear1, PrepackedLinear) \
                and module.linear1.activation == "relu":
            module.activation = nn.ReLU()
            module.linear1.activation = None
        for name, child in list(module.named_children()):
            if isinstance(child, PrepackedLinear):
                if child.activation is not None:
                    raise ValueError(f"{name}: a PrepackedLinear with a fused {child.activation} "
                                     "outside a feed-forward block cannot become an nn.Linear")
                plain = nn.Linear(child.in_features, child.out_features, child.bias is not None,
                                  device="meta")
                setattr(module, name, _sharing_parameters(plain, child))
    return model
