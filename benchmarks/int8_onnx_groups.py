"""Which products lose quality in int8 ONNX: onnxruntime's dynamic quantization of the exported
SepFormer, whole and one node group at a time, against the float32 graph.

The published SepFormer (random weights, as in ``sepformer_inference.py``) is exported once with
``audionets.export``; then each variant is quantized with ``onnxruntime.quantization`` and run
on the same input, and the SI-SNR of its output against the float32 graph's is printed (the
export target: >= 25 dB). Variants: what ``audionets.export.quantize_onnx`` does (unsigned
weights, U8U8, on MatMul / Gemm), onnxruntime's default signed weights (U8S8), U8S8 with 7-bit
``reduce_range``, per-channel weights, and U8S8 on one group of products only. A product's group
is read from the node that feeds it: LayerNormalization (attention's qkv and the first
feed-forward layer), Reshape (attention's output projection), Relu (the second feed-forward
layer), anything else (the masker's input and output layers), and the encoder's Conv::

    python benchmarks/int8_onnx_groups.py                # published model, 4 s input
    python benchmarks/int8_onnx_groups.py --small        # a 1-layer model: a quick check
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import torch
from _common import PUBLISHED

GROUPS = ("LayerNormalization", "Reshape", "Relu")


def product_groups(path: Path) -> dict[str, list[str]]:
    """Names of the MatMul nodes with a constant weight, by the op type that feeds them."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    constants = {initializer.name for initializer in model.graph.initializer}
    producer = {output: node for node in model.graph.node for output in node.output}
    groups: dict[str, list[str]] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in constants:
            feeder = producer.get(node.input[0])
            kind = feeder.op_type if feeder is not None and feeder.op_type in GROUPS else "other"
            groups.setdefault(kind, []).append(node.name)
    return groups


def variants(groups: dict[str, list[str]]) -> dict[str, dict | None]:
    """``quantize_dynamic`` keyword arguments per variant (None: audionets' own)."""
    from onnxruntime.quantization import QuantType

    s8 = dict(weight_type=QuantType.QInt8, extra_options={"MatMulConstBOnly": True})
    everything = [name for names in groups.values() for name in names]
    table: dict[str, dict | None] = {
        "audionets (U8U8, MatMul/Gemm)": None,
        "onnxruntime default (U8S8, + Conv)": dict(s8),
        "U8S8, reduce_range": dict(s8, reduce_range=True),
        "U8S8, per-channel, MatMul only": dict(s8, per_channel=True,
                                               op_types_to_quantize=["MatMul"]),
        "U8S8, encoder Conv only": dict(s8, op_types_to_quantize=["Conv"]),
    }
    for kind, names in groups.items():
        table[f"U8S8, {kind}-fed products only ({len(names)})"] = dict(
            s8, op_types_to_quantize=["MatMul"],
            nodes_to_exclude=[name for name in everything if name not in names])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--small", action="store_true", help="1 block of 1 layer each")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from onnxruntime.quantization import quantize_dynamic

    from audionets.export import export_model, quantize_onnx
    from audionets.hub import ModelMeta
    from audionets.inference.backends import OnnxModel
    from audionets.metrics import si_snr
    from audionets.models.sepformer import SepFormer

    config = dict(PUBLISHED, num_blocks=1, intra_layers=1, inter_layers=1) if args.small \
        else PUBLISHED
    torch.manual_seed(0)
    model = SepFormer(**config).eval()
    meta = ModelMeta(task="separation", sample_rate=8000, labels=None,
                     config={"model": {"name": "sepformer", **config}})
    mix = torch.randn(1, int(args.seconds * 8000), generator=torch.Generator().manual_seed(1))
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime's advice to pre-process
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        export_model(model, meta, folder / "fp32", "onnx")
        fp32 = folder / "fp32" / "model.onnx"
        reference = OnnxModel(fp32, "mix", "sources", threads=args.threads)(mix * 0.1)
        print(f"SepFormer {config}, {args.seconds:g} s input; SI-SNR of int8 vs float32:")
        for name, kwargs in variants(product_groups(fp32)).items():
            target = folder / "int8.onnx"
            if kwargs is None:
                quantize_onnx(fp32, target)
            else:
                quantize_dynamic(str(fp32), str(target), **kwargs)
            out = OnnxModel(target, "mix", "sources", threads=args.threads)(mix * 0.1)
            print(f"  {name:45s} {si_snr(out, reference).min().item():6.1f} dB", flush=True)


if __name__ == "__main__":
    main()
