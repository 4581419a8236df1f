"""Issue 18 (reliability round 2): each case that broke, as a user or an attacker would hit it.

Every test here failed before its fix. Model folders and audio are tiny; the subprocess tests
run the real ``audionets`` entry point where the behaviour depends on the process (signals,
memory, file size limits, missing packages).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audionets import audio

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, *args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)


def _sine(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ------------------------------------------------------------------ 1. odd sample rates


@pytest.mark.parametrize("rate", [22051, 44101, 199999])
def test_odd_rates_resample_with_a_small_kernel_and_the_right_signal(rate):
    orig, new = audio.resample_ratio(rate, 8000)
    assert audio._kernel_values(orig, new) <= audio.MAX_KERNEL_VALUES
    assert abs(new / orig - 8000 / rate) / (8000 / rate) < 1e-5
    wav = torch.from_numpy(_sine(rate, 0.5))[None]
    out = audio.resample(wav, rate, 8000)
    assert out.shape == (1, math.ceil(wav.shape[-1] * 8000 / rate))
    expected = _sine(8000, 1.0)[: out.shape[-1]]  # the same 440 Hz sine sampled at 8 kHz
    inner = slice(200, -200)  # away from the filter's edges
    assert np.abs(out[0].numpy()[inner] - expected[inner]).max() < 2e-3


def test_odd_rate_resampling_memory_stays_small(tmp_path):
    path = tmp_path / "odd.wav"
    sf.write(str(path), _sine(44101, 0.5), 44101)
    code = ("import resource, sys, torch\n"
            "from audionets import audio\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "audio.load(sys.argv[1], sample_rate=8000)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    done = _python(code, str(path))
    assert done.returncode == 0, done.stderr
    grown_mb = int(done.stdout.split()[-1]) / 1024
    assert grown_mb < 500, f"resampling 0.5 s at 44101 Hz grew the process by {grown_mb:.0f} MB"
