"""Run exported models (:mod:`audionets.export`) behind the same call as a PyTorch module.

:class:`OnnxModel` (onnxruntime) and a loaded TorchScript module both map a ``[B, T]`` float
tensor to the model's output tensor (``[B, S, T]`` sources or ``[B, C]`` logits) and carry
``num_sources`` / ``num_classes``, so :class:`~audionets.Separator` and
:class:`~audionets.Classifier` (resampling, chunking, stitching, output writing, input checks)
do not care which one runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from audionets.errors import CheckpointError, ConfigError, first_line
from audionets.tasks import TASKS


def default_threads() -> int:
    """Intra-op threads for onnxruntime: PyTorch's setting, so both backends use the same."""
    return max(1, torch.get_num_threads())


class OnnxModel:
    """An ONNX model run by onnxruntime on the CPU: ``wav [B, T] -> output tensor``.

    Args:
        path: the ``.onnx`` file.
        input_name / output_name: the graph's input and output (from ``config.yaml``).
        threads: onnxruntime intra-op threads (default: ``torch.get_num_threads()``).
        **attributes: set on the object (``num_sources``, ``num_classes``, ``sample_rate``).
    """

    def __init__(self, path: str | os.PathLike, input_name: str, output_name: str,
                 threads: int | None = None, **attributes: Any) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise CheckpointError(f"{path}: running ONNX models needs onnxruntime "
                                  "(pip install 'audionets[onnx]')") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: shape-inference notes are not for users
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own unrelated exception types
            first = first_line(err, 160)
            raise CheckpointError(f"{path}: onnxruntime cannot load it ({first}); export the "
                                  "model again") from None
        self.path = Path(path)
        self.input_name, self.output_name = input_name, output_name
        self.training = False
        for key, value in attributes.items():
            setattr(self, key, value)

    def __call__(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.device.type != "cpu":
            raise ConfigError("ONNX models run on the CPU; use device cpu")
        feed = {self.input_name: wav.detach().float().contiguous().numpy()}
        (out,) = self.session.run([self.output_name], feed)
        return torch.from_numpy(out)

    # the parts of the nn.Module interface the inference classes use
    def to(self, device: str | torch.device) -> "OnnxModel":
        if torch.device(device).type != "cpu":
            raise ConfigError(f"{self.path}: ONNX models run on the CPU here; use device cpu")
        return self

    def eval(self) -> "OnnxModel":
        return self

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r})"


def _signature(section: dict[str, Any], where: str) -> tuple[str, str, str, str]:
    try:
        fmt = str(section["format"])
        file = str(section["file"])
        input_name = str(section["inputs"][0]["name"])
        output_name = str(section["outputs"][0]["name"])
    except (KeyError, IndexError, TypeError):
        raise CheckpointError(f"{where}: the export section needs format, file, inputs and "
                              "outputs; export the model again") from None
    return fmt, file, input_name, output_name


def load_exported(folder: str | os.PathLike, device: str | torch.device = "cpu",
                  threads: int | None = None):
    """``(runtime model, meta)`` for an exported folder (ONNX or TorchScript)."""
    from audionets import hub

    folder = Path(folder)
    config = hub.read_config(folder / hub.CONFIG)
    where = str(folder / hub.CONFIG)
    section = config.get(hub.EXPORT_KEY)
    if not isinstance(section, dict):
        raise CheckpointError(f"{where}: 'export' must be a mapping; export the model again")
    fmt, file, input_name, output_name = _signature(section, where)
    path = folder / file
    if not path.is_file():
        raise CheckpointError(f"{path}: graph file missing; an exported folder needs "
                              f"{hub.CONFIG} and {file}")
    meta = hub.meta_from_config(config, str(folder))
    attributes = {"sample_rate": meta.sample_rate,
                  **TASKS.get(meta.task).model_attributes(config)}
    if fmt == "onnx":
        if torch.device(device).type != "cpu":
            raise ConfigError(f"{folder}: ONNX models run on the CPU here; use device cpu")
        return OnnxModel(path, input_name, output_name, threads=threads, **attributes), meta
    if fmt == "torchscript":
        try:
            module = torch.jit.load(str(path), map_location=device)
        except (RuntimeError, ValueError) as err:
            first = first_line(err, 160)
            raise CheckpointError(f"{path}: cannot load the TorchScript module ({first}); "
                                  "export the model again") from None
        return module.eval(), meta
    raise CheckpointError(f"{where}: unknown export format {fmt!r}; this audionets runs onnx "
                          "and torchscript")
