"""The "plain signals" sets of recipes/synth_events/make_plain_set.py: sox-made files at the
documented levels, lengths and rates, read back as a manifest_classification set."""

from __future__ import annotations

import csv
import dataclasses
import shutil

import numpy as np
import pytest
import soundfile as sf

from audionets.data.events import EVENT_CLASSES
from audionets.data.manifest import ManifestClassification
from tests import recipe_scripts

pytestmark = pytest.mark.skipif(shutil.which("sox") is None,
                                reason="sox is not installed (apt-get install sox)")


@pytest.mark.parametrize("split", ["test", "valid"])
def test_plain_set_files_have_their_level_length_rate_and_signal(split, tmp_path):
    plain = recipe_scripts.load("synth_events", "make_plain_set")
    grid = dataclasses.replace(plain.SPLITS[split], levels_dbfs=(-30.0, 0.0),
                               lengths_s=(0.2, 1.0))
    count = plain.write_plain_set(tmp_path, split, grid)
    assert count == 4 * len(grid.signals)
    assert (tmp_path / "labels.txt").read_text().split() == list(EVENT_CLASSES)
    with open(tmp_path / f"{split}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == count
    for row in rows:
        wav, rate = sf.read(tmp_path / row["path"])
        assert rate in grid.rates
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
    data = ManifestClassification(str(tmp_path), split=split, sample_rate=16000)
    assert data.labels == list(EVENT_CLASSES) and len(data) == count
    item = data[0]
    assert item["wav"].ndim == 1 and int(item["label"]) == int(rows[0]["label"])


def test_plain_valid_set_shares_no_signal_or_level_with_the_test_set():
    # choosing a model on valid says nothing about test only if no file could be in both
    splits = recipe_scripts.load("synth_events", "make_plain_set").SPLITS
    test, valid = splits["test"], splits["valid"]
    assert not set(test.levels_dbfs) & set(valid.levels_dbfs)
    assert not set(test.lengths_s) & set(valid.lengths_s)
    for category, variants in test.signals.items():
        if "noise" not in category:
            assert not set(variants) & set(valid.signals[category])
