"""Reconstruction (autoencoders): ``model(wav[B, T]) -> [B, T]`` against ``wav``."""

from __future__ import annotations

import torch

from audionets.errors import ConfigError
from audionets.metrics import snr
from audionets.registry import TASKS
from audionets.tasks.base import Task


@TASKS.register("reconstruction")
class ReconstructionTask(Task):
    """L1 or MSE (``loss.kind``) between the output and the input; metric SNR in dB."""

    name = "reconstruction"
    item_keys = ("wav",)
    metric_names = ("snr",)
    default_monitor = "valid_snr"
    eval_metric_names = ("snr",)
    reference_key = "wav"

    def __init__(self, kind: str = "l1") -> None:
        if kind not in ("l1", "mse"):
            raise ConfigError(f"loss.kind: {kind!r} is not one of: l1, mse")
        self.kind = kind

    def forward(self, model, batch):
        wav = batch["wav"]
        output = model(wav).float()
        if output.shape != wav.shape:
            raise ConfigError(
                f"model output {tuple(output.shape)} does not match the input {tuple(wav.shape)}"
            )
        return output

    def score(self, outputs, batch):
        wav = batch["wav"]
        error = (outputs - wav).abs() if self.kind == "l1" else (outputs - wav) ** 2
        with torch.no_grad():
            quality = snr(outputs.detach(), wav)
        return error.mean(dim=-1), {"snr": quality}

    def item_figures(self, outputs, batch, metrics, sdr):
        return {"snr": float(metrics["snr"][0])}
