"""The CUDA and mixed-precision paths: skipped without a GPU (``benchmarks/gpu.sh`` runs them).

On a GPU machine: ``python -m pytest -q tests/test_cuda.py``.
"""

from __future__ import annotations

import math

import pytest
import torch

from audionets.inference import Separator
from audionets.metrics import si_snr
from audionets.models.sepformer import SepFormer
from audionets.serialization.checkpoints import load_checkpoint
from audionets.training.config import config_from_dict
from audionets.training.metrics_log import read_metrics
from audionets.training.trainer import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TINY = {"name": "sepformer", "encoder_channels": 32, "d_model": 32, "chunk_size": 20,
        "num_blocks": 1, "intra_layers": 1, "inter_layers": 1, "nhead": 4, "d_ffn": 64}


def test_sepformer_on_cuda_equals_cpu_and_bf16_stays_close():
    torch.manual_seed(0)
    model = SepFormer(**{k: v for k, v in TINY.items() if k != "name"}).eval()
    mix = torch.randn(2, 8000) * 0.1
    with torch.inference_mode():
        cpu = model(mix)
        gpu = model.cuda()(mix.cuda())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            half = model(mix.cuda()).float()
    assert gpu.device.type == "cuda"
    assert (gpu.cpu() - cpu).abs().max() <= 1e-4 * cpu.abs().max()
    assert si_snr(half.cpu(), cpu).min() > 20.0


def test_separator_on_cuda_matches_cpu():
    mix = torch.randn(1, 16000) * 0.1
    on_cpu = Separator.from_pretrained().separate_batch(mix)
    on_gpu = Separator.from_pretrained(device="cuda").separate_batch(mix)
    assert on_gpu.device.type == "cpu"  # results come back on the CPU
    assert (on_gpu - on_cpu).abs().max() <= 1e-4 * on_cpu.abs().max()


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_a_tiny_sepformer_trains_on_cuda(tmp_path, precision):
    config = config_from_dict({
        "task": "separation", "sample_rate": 8000, "experiment_dir": str(tmp_path / "run"),
        "model": TINY, "optimizer": {"name": "adam", "lr": 1e-3},
        "data": {"name": "synth_mix", "segment_seconds": 0.5, "num_examples": 32,
                 "valid": {"num_examples": 8}, "test": {"num_examples": 4}},
        "trainer": {"device": "cuda", "precision": precision, "max_epochs": 3,
                    "batch_size": 4, "num_workers": 1, "keep_best": 1},
    })
    train(config)
    rows = read_metrics(tmp_path / "run/metrics.csv")
    assert all(math.isfinite(r["train_loss"]) for r in rows)
    assert rows[-1]["valid_si_snri"] > rows[0]["valid_si_snri"] - 0.5
    state = load_checkpoint(tmp_path / "run/checkpoints/last.pt")
    assert ("scale" in state["scaler"]) == (precision == "fp16")
