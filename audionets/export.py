"""Export a model for other runtimes: ONNX (dynamic batch and length) and TorchScript.

An exported folder is ``config.yaml`` + the graph file (``model.onnx`` or ``model.torchscript``).
``config.yaml`` is the model's config (task, sample rate, labels, the ``model`` dict) with an
``export`` section that says how to feed the graph, for any runtime::

    export:
      format: onnx                 # onnx | torchscript
      file: model.onnx
      precision: float32           # float32 | int8 (onnxruntime dynamic quantization)
      inputs:  [{name: mix, dtype: float32, shape: [batch, time]}]
      outputs: [{name: sources, dtype: float32, shape: [batch, sources, time]}]
      opset: 18                    # ONNX only
      audionets_version: 0.1.0

Separators map ``mix [batch, time] -> sources [batch, sources, time]`` and classifiers
``wav [batch, time] -> logits [batch, classes]`` (each task's ``export_signature``; models of a
task without one are not exported), at the config's ``sample_rate``, for any batch size and
any length (front-ends are inside the graph). :mod:`audionets.inference.backends`
runs such folders behind :class:`~audionets.Separator` and :class:`~audionets.Classifier`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audionets._version import __version__
from audionets.errors import CheckpointError, ConfigError, first_line
from audionets.tasks import TASKS

FORMATS = ("safetensors", "onnx", "torchscript")
GRAPH_FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript"}
PRECISIONS = ("float32", "int8")
OPSET = 18
#: lengths (samples) an export is checked at against the PyTorch model: besides the traced
#: one, a very short and an odd one, so that a graph that fixed a length fails here
CHECK_LENGTHS = (7, 12347)


def signature(task: str, fmt: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The graph's input and output of a ``task`` model (its task's ``export_signature``);
    CheckpointError when models of that task are not exported."""
    found = TASKS.get(task).export_signature
    if found is None:
        exported = [name for name in TASKS if TASKS.get(name).export_signature is not None]
        raise CheckpointError(f"a {task} model cannot be exported as {fmt}; only "
                              f"{' and '.join(exported)} models can")
    return found


def export_section(task: str, fmt: str) -> dict[str, Any]:
    """The ``export`` section of an exported float32 folder's ``config.yaml``
    (:func:`quantize_folder` turns it into an int8 one)."""
    inputs, outputs = signature(task, fmt)
    section = {"format": fmt, "file": GRAPH_FILES[fmt], "precision": "float32",
               "inputs": [dict(inputs)], "outputs": [dict(outputs)]}
    if fmt == "onnx":
        section["opset"] = OPSET
    section["audionets_version"] = __version__
    return section


def _example(sample_rate: int) -> torch.Tensor:
    """A 2 x 1.01 s random input (the traced length; any other length works too)."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, int(sample_rate * 1.01) + 1, generator=generator)


def _quiet():
    """A context that hides the exporters' chatter (progress lines, deprecation notes)."""
    import contextlib
    import io

    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack


def write_onnx(model: nn.Module, path: Path, task: str, sample_rate: int) -> None:
    """Export ``model`` (eval mode, CPU) to ONNX at ``path`` with dynamic batch and time axes."""
    import importlib.util
    import logging

    missing = [name for name in ("onnx", "onnxscript", "onnxruntime")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"ONNX export needs {', '.join(missing)}: pip install "
                          "'audionets[onnx]'")
    inputs, outputs = signature(task, "onnx")
    batch = torch.export.Dim("batch", min=1)
    time = torch.export.Dim("time", min=1)
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                model, (_example(sample_rate),), dynamo=True, opset_version=OPSET,
                dynamic_shapes=({0: batch, 1: time},), input_names=[inputs["name"]],
                output_names=[outputs["name"]], optimize=True, verbose=False,
            )
            program.save(str(path))
    except Exception as err:  # the exporters raise many types; all mean "cannot export this"
        first = first_line(err, 200)
        raise CheckpointError(f"{type(model).__name__}: cannot be exported to ONNX ({first})"
                              ) from err
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def quantize_onnx(source: Path, target: Path) -> None:
    """onnxruntime dynamic int8 quantization of ``source``: the matrix products with a constant
    weight (MatMul / Gemm), as PyTorch's ``quantize_dynamic`` quantizes ``nn.Linear``.

    What stays float32, and why (measured on the published SepFormer with random weights,
    4 s input, SI-SNR of int8 against float32; benchmarks/README.md has the table):

    - activation-by-activation products (attention's Q K^T and A V: ``MatMulConstBOnly``);
    - convolutions (the encoder / decoder): one layer each, little time, and int8 there alone
      already costs 36 dB;
    - softmax, normalisations, the mask nonlinearities: not products, nothing to gain.

    Weights are **unsigned** 8 bit (``QUInt8``, with uint8 activations: onnxruntime's U8U8
    kernels). Its default, signed weights with unsigned activations (U8S8), multiplies byte
    pairs into 16-bit sums that saturate on x86 CPUs without VNNI instructions (AVX2 or
    AVX-512 without VNNI): 11 dB on that model, against 33 dB with U8U8 (and 29 dB with U8S8 at
    7-bit ``reduce_range``). U8U8 never saturates, so the quality does not depend on the CPU.
    """
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process is logged on the root logger
    try:
        with _quiet():
            quantize_dynamic(str(source), str(target), weight_type=QuantType.QUInt8,
                             op_types_to_quantize=["MatMul", "Gemm"],
                             extra_options={"MatMulConstBOnly": True})
    finally:
        root.setLevel(level)


def write_torchscript(model: nn.Module, path: Path) -> None:
    """``torch.jit.script(model)`` saved at ``path``."""
    try:
        with _quiet():
            scripted = torch.jit.script(model)
    except Exception as err:  # TorchScript's compiler errors have no common type
        first = first_line(err, 200)
        raise CheckpointError(f"{type(model).__name__}: cannot be compiled with TorchScript "
                              f"({first})") from err
    scripted.save(str(path))


def check_export(model: nn.Module, folder: Path, compare: bool = True,
                 tolerance: float = 1e-4) -> float:
    """Run the exported folder and ``model`` on :data:`CHECK_LENGTHS`; return the largest
    difference relative to the PyTorch output's peak (0 when not ``compare``: shapes only).
    CheckpointError for another shape or a difference above ``tolerance``."""
    from audionets.inference.backends import load_exported

    runtime, _ = load_exported(folder)
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for length in CHECK_LENGTHS:
        wav = torch.randn(1, length, generator=generator)
        with torch.no_grad():
            expected = model(wav)
            got = runtime(wav)
        if tuple(got.shape) != tuple(expected.shape):
            raise CheckpointError(f"{type(model).__name__}: the exported graph returns shape "
                                  f"{tuple(got.shape)} for a {length}-sample input, PyTorch "
                                  f"{tuple(expected.shape)}; please report this model config")
        if not compare:
            continue
        peak = float(expected.abs().max()) or 1.0
        worst = max(worst, float((got - expected).abs().max()) / peak)
    if worst > tolerance:
        raise CheckpointError(f"{type(model).__name__}: the exported graph differs from the "
                              f"PyTorch model by "
                              f"{worst:.2e} of the peak; please report this model config")
    return worst


def _move_into_place(staging: Path, folder: Path, graph: str) -> None:
    """fsync ``graph`` and ``config.yaml`` in ``staging`` and rename them into ``folder``."""
    import os

    for name in (graph, "config.yaml"):  # the graph first: a config never names a graph
        with open(staging / name, "rb+") as handle:  # that is not there
            os.fsync(handle.fileno())
        os.replace(staging / name, folder / name)


def quantize_folder(source: str | Path, target: str | Path) -> Path:
    """Write an int8 copy of the float32 ONNX folder ``source`` (an :func:`export_model`
    output) to ``target``: :func:`quantize_onnx` of its graph, its ``config.yaml`` with
    ``precision: int8``. The graph is checked for its output shapes against ``source`` (its
    values differ from float32 by design) before anything is moved into ``target``.
    """
    import tempfile

    import yaml

    from audionets import hub
    from audionets.inference.backends import load_exported
    from audionets.utils import prepare_out_dir

    source, target = Path(source), Path(target)
    config = hub.read_config(source / hub.CONFIG)
    section = config.get(hub.EXPORT_KEY)
    if not isinstance(section, dict) or section.get("format") != "onnx" \
            or section.get("precision") != "float32":
        raise CheckpointError(f"{source}: not a float32 ONNX export; export it with "
                              "--format onnx first")
    config[hub.EXPORT_KEY] = dict(section, precision="int8")
    reference, _ = load_exported(source)
    graph = GRAPH_FILES["onnx"]
    prepare_out_dir(target)
    with tempfile.TemporaryDirectory(dir=target, prefix=".export-") as scratch:
        staging = Path(scratch)
        quantize_onnx(source / graph, staging / graph)
        (staging / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False),
                                             encoding="utf-8")
        check_export(reference, staging, compare=False)
        _move_into_place(staging, target, graph)
    return target


def export_model(model: nn.Module, meta, folder: str | Path, fmt: str,
                 precision: str = "float32") -> Path:
    """Write ``model`` (with ``meta``, a :class:`~audionets.hub.ModelMeta`) to ``folder``
    as ``fmt`` (``onnx`` or ``torchscript``), checked against the PyTorch model.

    The files are written and checked in a temporary folder inside ``folder`` and moved into
    place only when the check passes, so a failed export leaves nothing behind (and an earlier
    export in ``folder`` as it was). ``precision="int8"`` (ONNX only): the float32 graph,
    checked against PyTorch, is quantized with :func:`quantize_folder`.
    """
    import tempfile

    import yaml

    from audionets.utils import prepare_out_dir

    if fmt not in GRAPH_FILES:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose float32 or int8")
    if precision == "int8" and fmt != "onnx":
        raise ConfigError("int8 export is for --format onnx (onnxruntime quantization)")
    folder = Path(folder)
    config = dict(meta.config)
    config.update(task=meta.task, sample_rate=int(meta.sample_rate), labels=meta.labels,
                  audionets_version=__version__,
                  export=export_section(meta.task, fmt))
    model = model.cpu().eval()
    prepare_out_dir(folder)
    graph = GRAPH_FILES[fmt]
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as scratch:
        staging = Path(scratch)
        if fmt == "torchscript":
            write_torchscript(model, staging / graph)
        else:
            write_onnx(model, staging / graph, meta.task, meta.sample_rate)
        (staging / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False),
                                             encoding="utf-8")
        check_export(model, staging)
        if precision == "int8":
            quantize_folder(staging, folder)
        else:
            _move_into_place(staging, folder, graph)
    return folder
