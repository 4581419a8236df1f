"""``audionets export SOURCE OUT_DIR``: a trained run -> a model folder for PyTorch or others.

``--format safetensors`` (the default) writes ``OUT_DIR/config.yaml`` + ``model.safetensors``
from the best checkpoint of an experiment (else ``last.pt``), a checkpoint file or any model
source, loadable with ``audionets.hub.load_model(OUT_DIR)`` / ``Separator.from_pretrained``.
``--format onnx`` / ``torchscript`` write ``config.yaml`` (with an ``export`` section that
names the graph's inputs and outputs) + ``model.onnx`` / ``model.torchscript``, a graph for any
batch size and input length, checked against the PyTorch model before the command returns
(see :mod:`audionets.export`).
"""

from __future__ import annotations

import argparse
import sys

HELP = "export a trained experiment (or any model) as safetensors, ONNX or TorchScript"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", metavar="SOURCE",
                        help="experiment folder (config.yaml + checkpoints/), a .pt checkpoint, "
                             "a model folder or a shipped model name")
    parser.add_argument("out_dir", help="output folder for config.yaml + the model file")
    parser.add_argument("--format", choices=["safetensors", "onnx", "torchscript"],
                        default="safetensors",
                        help="safetensors (PyTorch weights, default), onnx (a graph for "
                             "onnxruntime and other runtimes) or torchscript (for libtorch)")
    parser.add_argument("--precision", choices=["float32", "int8"], default="float32",
                        help="int8: onnxruntime dynamic quantization of the ONNX graph "
                             "(--format onnx only); default float32")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    parser.add_argument("--average-with", metavar="SOURCE", action="append", default=[],
                        help="export the element-wise mean of SOURCE's weights and these "
                             "(repeatable; same model config and labels): checkpoint averaging")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from audionets import hub
    from audionets.errors import ConfigError, OutputError
    from audionets.export import GRAPH_FILES, export_model
    from audionets.utils import check_out_dir, real_path

    if args.precision != "float32" and args.format != "onnx":
        raise ConfigError("--precision int8 is for --format onnx")
    out = Path(args.out_dir)
    check_out_dir(out)
    if real_path(args.experiment) == real_path(out):
        raise OutputError(f"{out}: is the input; choose another output folder")
    if (out / "checkpoints").is_dir():
        raise OutputError(f"{out}: is an experiment folder (it has checkpoints/); export to a "
                          "folder of its own")
    model_file = GRAPH_FILES.get(args.format, hub.WEIGHTS)
    existing = [name for name in (hub.CONFIG, model_file) if (out / name).exists()]
    if existing and not args.overwrite:
        raise OutputError(f"{out}: already holds {' and '.join(existing)}; pass --overwrite or "
                          "choose another folder")
    model, meta = hub.load_model(args.experiment)
    if args.average_with:
        _average_into(model, meta, args.experiment, args.average_with)
    config = dict(meta.config)
    # keep what describes the model, drop training-only sections
    meta.config = {k: config[k] for k in ("task", "sample_rate", "model", "labels", "data", "loss")
                   if k in config}
    if args.format == "safetensors":
        hub.save_pretrained(model, meta, out)
    else:
        print(f"audionets export: tracing {meta.config['model']['name']} to {args.format} and "
              "checking it against PyTorch (ONNX: a minute or more) ...", file=sys.stderr,
              flush=True)
        export_model(model, meta, out, args.format, args.precision)
    params = sum(p.numel() for p in model.parameters())
    sources = " + ".join([str(meta.source), *args.average_with])
    print(f"audionets export: {meta.config['model']['name']} ({params:,} parameters) from "
          f"{'the mean of ' if args.average_with else ''}{sources} -> {out} ({args.format}"
          f"{', int8' if args.precision == 'int8' else ''})")
    return 0


def _average_into(model, meta, source: str, others: list[str]) -> None:
    """Load ``others`` and put the mean of their and ``model``'s weights into ``model``."""
    from audionets import hub
    from audionets.errors import ConfigError
    from audionets.serialization.weights import average_weights, load_weights

    states, names = [model.state_dict()], [source]
    for other in others:
        other_model, other_meta = hub.load_model(other)
        for what, mine, theirs in (("model config", meta.config.get("model"),
                                    other_meta.config.get("model")),
                                   ("labels", meta.labels, other_meta.labels)):
            if theirs != mine:
                raise ConfigError(f"{other}: its {what} differs from {source}'s; "
                                  "--average-with takes runs of one model and label set")
        states.append(other_model.state_dict())
        names.append(other)
    load_weights(model, average_weights(states, names), f"the mean of {' + '.join(names)}")
