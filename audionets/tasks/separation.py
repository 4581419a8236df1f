"""Separation: ``model(mix[B, T]) -> [B, S, T]`` against ``sources[B, S, T]``, whatever order."""

from __future__ import annotations

import torch

from audionets.errors import ConfigError
from audionets.metrics import pit_align, sdr_improvement, si_snr, thresholded_mean
from audionets.metrics import sdr as bss_sdr
from audionets.registry import TASKS
from audionets.tasks.base import Task

SDR_FILTER = 512  # BSS Eval's distortion filter length (mir_eval's default)


@TASKS.register("separation")
class SeparationTask(Task):
    """Permutation-invariant negative SI-SNR.

    The estimates are lined up with the sources by the permutation of best SI-SNR
    (:meth:`forward`). ``loss.threshold`` (dB, e.g. -30 as in SpeechBrain's SepFormer recipes)
    drops the items whose loss is already below it from the batch mean, so that easy examples
    stop dominating; when every item is below it the plain mean is used. Metrics: ``si_snr``
    of the best permutation and ``si_snri`` (its improvement over the mixture), both in dB,
    averaged over the sources; an evaluation adds BSS Eval ``sdr`` and ``sdri`` (with
    ``fast_bss_eval``), undefined for items of at most :data:`SDR_FILTER` samples.
    """

    name = "separation"
    item_keys = ("mix", "sources")
    metric_names = ("si_snr", "si_snri")
    default_monitor = "valid_si_snri"
    eval_metric_names = ("si_snr", "si_snri", "sdr", "sdri")
    reference_key = "sources"
    runner = "Separator"
    export_signature = (
        {"name": "mix", "dtype": "float32", "shape": ["batch", "time"]},
        {"name": "sources", "dtype": "float32", "shape": ["batch", "sources", "time"]})

    @classmethod
    def model_attributes(cls, config):
        return {"num_sources": int(config["model"].get("num_sources", 2))}

    def __init__(self, threshold: float | None = None) -> None:
        if threshold is not None and not isinstance(threshold, (int, float)):
            raise ConfigError(f"loss.threshold: expected a number or null, got {threshold!r}")
        self.threshold = None if threshold is None else float(threshold)

    def forward(self, model, batch):
        """The estimates ``[B, S, T]`` reordered to line up with ``sources`` (PIT)."""
        sources = batch["sources"]  # [B, S, T]
        estimates = model(batch["mix"])
        if estimates.shape != sources.shape:
            raise ConfigError(
                f"model output {tuple(estimates.shape)} does not match the sources "
                f"{tuple(sources.shape)}: the model separates another number of sources than "
                "the data holds (to train, set model.num_sources to the dataset's)"
            )
        return pit_align(estimates.float(), sources)

    def score(self, outputs, batch):
        mix, sources = batch["mix"], batch["sources"]
        loss = -si_snr(outputs, sources).mean(dim=-1)  # [B]: pit_si_snr_loss, as aligned
        with torch.no_grad():
            best = -loss.detach()
            baseline = si_snr(mix.unsqueeze(1).expand_as(sources).float(), sources).mean(dim=-1)
        return loss, {"si_snr": best, "si_snri": best - baseline}

    def reduce(self, loss):
        return thresholded_mean(loss, self.threshold)

    def evaluation_metrics(self, sdr=True):
        return self.eval_metric_names if sdr else ("si_snr", "si_snri")

    def item_figures(self, outputs, batch, metrics, sdr):
        figures = {"si_snr": float(metrics["si_snr"][0]), "si_snri": float(metrics["si_snri"][0])}
        ordered, sources, mix = outputs[0], batch["sources"][0], batch["mix"][0]  # [S, T], [T]
        if sdr and sources.shape[-1] > SDR_FILTER:
            figures["sdr"] = float(bss_sdr(ordered, sources, SDR_FILTER).mean())
            figures["sdri"] = float(sdr_improvement(ordered, sources, mix, SDR_FILTER).mean())
        elif sdr:
            figures.update(sdr=None, sdri=None, note=f"too short for SDR (<= {SDR_FILTER} samples)")
        return figures
