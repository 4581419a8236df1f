"""The "plain signals" test set of recipes/synth_events/make_plain_set.py: sox-made files at the
documented levels, lengths and rates, read back as a manifest_classification set."""

from __future__ import annotations

import csv
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audionets.data.events import EVENT_CLASSES
from audionets.data.manifest import ManifestClassification

SCRIPT = Path(__file__).resolve().parents[1] / "recipes" / "synth_events" / "make_plain_set.py"
pytestmark = pytest.mark.skipif(shutil.which("sox") is None,
                                reason="sox is not installed (apt-get install sox)")


def _script():
    spec = importlib.util.spec_from_file_location("make_plain_set", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plain_set_files_have_their_level_length_rate_and_signal(tmp_path):
    plain = _script()
    count = plain.write_plain_set(tmp_path, levels=(-30.0, 0.0), lengths=(0.2, 1.0))
    assert count == 4 * len(plain.SIGNALS)
    assert (tmp_path / "labels.txt").read_text().split() == list(EVENT_CLASSES)
    with open(tmp_path / "test.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == count
    for row in rows:
        wav, rate = sf.read(tmp_path / row["path"])
        assert rate in plain.RATES
        assert len(wav) == round(float(row["duration"]) * rate)
        level = float(row["id"].split("-peak")[1].split("dB")[0])
        assert 20 * np.log10(np.abs(wav).max()) == pytest.approx(level, abs=0.1)
        assert EVENT_CLASSES[int(row["label"])] == row["category"]
        if row["category"] == "tone":  # a sine at the frequency its name gives
            freq = float(row["id"].split("sine_")[1].split("-")[0])
            spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
            peak = np.fft.rfftfreq(len(wav), 1 / rate)[spectrum.argmax()]
            assert peak == pytest.approx(freq, abs=2 * rate / len(wav))
        if row["category"] in ("chirp_up", "chirp_down"):  # the sweep goes the named way
            half = len(wav) // 2
            centroid = [np.average(np.fft.rfftfreq(half, 1 / rate),
                                   weights=np.abs(np.fft.rfft(part))) for part in
                        (wav[:half], wav[half:2 * half])]
            assert (centroid[1] > centroid[0]) == (row["category"] == "chirp_up")
    data = ManifestClassification(str(tmp_path), split="test", sample_rate=16000)
    assert data.labels == list(EVENT_CLASSES) and len(data) == count
    item = data[0]
    assert item["wav"].ndim == 1 and int(item["label"]) == int(rows[0]["label"])
