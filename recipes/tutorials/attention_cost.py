"""Self-attention cost: full attention vs the dual-path (chunked) scheme against sequence length.

    python recipes/tutorials/attention_cost.py --out-dir outputs/tutorials

``softmax(Q K^T / sqrt(d)) V`` over T frames builds a T x T matrix: time and memory grow as
O(T^2). The dual-path scheme of SepFormer (``audionets.models.sepformer``) cuts the sequence
into 50 %-overlapping chunks of K frames (``audionets.nn.chunking``; S = 2T / K chunks) and
attends within each chunk (S K^2 = 2 T K) and then across chunks at each position (K S^2 =
4 T^2 / K). With K ~ sqrt(2 T) both are O(T sqrt(T)). Both are written with the explicit
formula (Q = K = V = x, no projections), so that the attention matrices really exist; the
fused kernel ``scaled_dot_product_attention`` that the package's models use avoids storing
them, which saves memory but not the O(T^2) arithmetic. Measured: wall time of one forward
pass (best of ``--repeats``, full and dual path interleaved) and, in one more pass, the peak
bytes of the tensors it allocates (counted by a dispatch mode as they are created and freed).
Besides the attention matrices, both hold a few copies of the T x d input: at small T these
O(T d) terms lower the measured slopes below the predicted ones. Writes
``attention_cost.png`` (log-log, with the O(T^2) and O(T sqrt T) slopes) and prints the
slopes of log-log fits.
"""

from __future__ import annotations

import math
import time
import weakref

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from audionets.nn.chunking import overlap_add, segment
from common import base_parser, parse, pyplot, save_figure


class PeakMemory(TorchDispatchMode):
    """Inside ``with PeakMemory() as m:``, ``m.peak`` is the largest number of bytes held at
    once by the tensors created inside the block (views of existing storage are not counted).
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._sizes: dict[int, int] = {}

    def _free(self, pointer: int) -> None:
        self.live -= self._sizes.pop(pointer, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs))
                  if isinstance(t, torch.Tensor)}
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            pointer = storage.data_ptr()
            if pointer in inputs or pointer in self._sizes or storage.nbytes() == 0:
                continue
            self._sizes[pointer] = storage.nbytes()
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._free, pointer)  # runs when the storage is freed
        return out


def attention(x: torch.Tensor) -> torch.Tensor:
    """Self-attention ``softmax(x x^T / sqrt(d)) x`` over the frames:
    ``x[B, T, d] -> [B, T, d]``."""
    scores = x @ x.transpose(-1, -2) / math.sqrt(x.shape[-1])  # [B, T, T]
    return scores.softmax(dim=-1) @ x


def chunk_size_for(length: int) -> int:
    """``K = sqrt(2 T)`` (rounded to an even number): balances the 2 T K intra-chunk and the
    4 T^2 / K inter-chunk products."""
    return max(2, 2 * round(math.sqrt(2 * length) / 2))


def dual_path_attention(x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Intra-chunk then inter-chunk self-attention: ``x[B, T, d] -> [B, T, d]``."""
    chunks, gap = segment(x, chunk_size)  # [B, S, K, d]
    batch, num_chunks, size, dim = chunks.shape
    intra = attention(chunks.reshape(batch * num_chunks, size, dim))  # within each chunk
    intra = intra.reshape(batch, num_chunks, size, dim).transpose(1, 2)  # [B, K, S, d]
    inter = attention(intra.reshape(batch * size, num_chunks, dim))  # across chunks
    inter = inter.reshape(batch, size, num_chunks, dim).transpose(1, 2)
    return overlap_add(inter, gap)


@torch.no_grad()
def seconds(fn, x: torch.Tensor) -> float:
    """Wall time of one call of ``fn(x)`` without autograd."""
    start = time.perf_counter()
    fn(x)
    return time.perf_counter() - start


@torch.no_grad()
def peak_bytes(fn, x: torch.Tensor) -> int:
    """Peak bytes of the tensors one call of ``fn(x)`` allocates (a separate, untimed call:
    the dispatch mode's bookkeeping would slow the timed ones)."""
    with PeakMemory() as memory:
        fn(x)
    return memory.peak


def loglog_slope(lengths, values) -> float:
    """Slope of the least-squares line through ``(log T, log value)``."""
    return float(np.polyfit(np.log(lengths), np.log(values), 1)[0])


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+",
                        default=[1000, 2000, 4000, 8000, 16000])
    parser.add_argument("--dim", type=int, default=16, help="feature size d")
    parser.add_argument("--repeats", type=int, default=3)
    args = parse(parser, argv)
    if args.quick:
        args.lengths, args.repeats = [1000, 2000, 3000, 4000], 2
    generator = torch.Generator().manual_seed(args.seed)
    methods = {"full": attention,
               "dual-path": lambda x: dual_path_attention(x, chunk_size_for(x.shape[1]))}
    results: dict[str, dict[str, list]] = {name: {"seconds": [], "bytes": []} for name in methods}
    for length in args.lengths:
        x = torch.randn(1, length, args.dim, generator=generator)
        times = {name: [] for name in methods}
        for _ in range(args.repeats):  # interleaved, so a busy moment hits both
            for name, fn in methods.items():
                times[name].append(seconds(fn, x))
        for name, fn in methods.items():
            results[name]["seconds"].append(min(times[name]))
            results[name]["bytes"].append(peak_bytes(fn, x))
        print(f"T = {length:>6} (K = {chunk_size_for(length):>3}): full "
              f"{results['full']['seconds'][-1] * 1e3:8.1f} ms "
              f"{results['full']['bytes'][-1] / 2**20:8.1f} MiB | dual-path "
              f"{results['dual-path']['seconds'][-1] * 1e3:8.1f} ms "
              f"{results['dual-path']['bytes'][-1] / 2**20:8.1f} MiB", flush=True)
    for name, r in results.items():
        r["time_slope"] = loglog_slope(args.lengths, r["seconds"])
        r["memory_slope"] = loglog_slope(args.lengths, r["bytes"])
        print(f"{name:>9}: log-log slope of time {r['time_slope']:.2f}, "
              f"of memory {r['memory_slope']:.2f}")
    results["lengths"] = list(args.lengths)

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), gridspec_kw={"wspace": 0.3})
    lengths = np.array(args.lengths, dtype=float)
    for ax, key, unit, scale in ((axes[0], "seconds", "time of one forward pass (s)", 1.0),
                                 (axes[1], "bytes", "peak tensor memory (MiB)", 2.0**-20)):
        for (name, power), color in zip((("full", 2.0), ("dual-path", 1.5)),
                                        ("tab:red", "tab:blue")):
            values = np.array(results[name][key]) * scale
            slope = results[name]["time_slope" if key == "seconds" else "memory_slope"]
            ax.plot(lengths, values, "o-", color=color,
                    label=f"{name}: measured, slope {slope:.2f}")
            predicted = values[-1] * (lengths / lengths[-1]) ** power  # through the last point
            ax.plot(lengths, predicted, ":", color=color,
                    label="O(T²)" if power == 2 else "O(T·√T)")
        ax.set(xscale="log", yscale="log", xlabel="sequence length T (frames)", ylabel=unit)
        ax.legend(fontsize=8)
    axes[0].set_title(f"self-attention, d = {args.dim}, {args.threads} CPU thread(s)")
    axes[1].set_title("memory: the T x T scores vs 2T/K chunks of K x K")
    save_figure(fig, args.out_dir / "attention_cost.png")
    return results


if __name__ == "__main__":
    main()
