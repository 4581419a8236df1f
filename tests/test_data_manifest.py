"""CSV manifests: writing synthetic sets to disk and reading them back."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import audionets.data  # noqa: F401  (registers the datasets)
from audionets.cli import main
from audionets.data.manifest import write_dataset
from audionets.errors import ConfigError, OutputError
from audionets.registry import DATASETS

LSB = 1.0 / 32768  # one step of 16-bit PCM


def test_separation_round_trip(tmp_path):
    synth = DATASETS.build("synth_mix", split="test", num_speakers=3, sample_rate=8000,
                           segment_seconds=0.25, num_examples=3)
    manifest = write_dataset(synth, tmp_path)
    assert manifest == tmp_path / "test.csv"
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["id", "mix_path", "s1_path", "s2_path", "s3_path", "duration"]
    assert not rows[0]["mix_path"].startswith("/")  # relative to the manifest
    assert float(rows[0]["duration"]) == pytest.approx(0.25)
    data, rate = sf.read(tmp_path / rows[1]["s2_path"], dtype="int16")
    assert rate == 8000 and data.shape == (2000,)  # 16-bit mono files

    back = DATASETS.build("manifest_separation", root=str(tmp_path), split="test",
                          sample_rate=8000, segment_seconds=None)
    assert len(back) == 3 and back.num_sources == 3
    for i in range(3):
        ours, theirs = synth[i], back[i]
        assert theirs["id"] == ours["id"]
        torch.testing.assert_close(theirs["mix"], ours["mix"], rtol=0, atol=LSB)
        torch.testing.assert_close(theirs["sources"], ours["sources"], rtol=0, atol=LSB)

    cropped = DATASETS.build("manifest_separation", root=str(tmp_path), split="test",
                             sample_rate=8000, segment_seconds=0.1)
    item = cropped[0]
    assert item["mix"].shape == (800,) and item["sources"].shape == (3, 800)
    torch.testing.assert_close(item["mix"], back[0]["mix"][:800])  # deterministic: the start
    padded = DATASETS.build("manifest_separation", root=str(tmp_path), split="train",
                            sample_rate=8000, segment_seconds=0.5, csv="test.csv")
    assert padded[0]["mix"].shape == (4000,) and padded[0]["mix"][2000:].abs().sum() == 0
    with pytest.raises(ConfigError, match="data.num_speakers"):
        DATASETS.build("manifest_separation", root=str(tmp_path), split="test", num_speakers=2)


def test_train_crop_is_random_but_aligned(tmp_path):
    synth = DATASETS.build("synth_mix", split="train", segment_seconds=0.5, num_examples=1)
    write_dataset(synth, tmp_path)
    ds = DATASETS.build("manifest_separation", root=str(tmp_path), split="train",
                        segment_seconds=0.1)
    full = DATASETS.build("manifest_separation", root=str(tmp_path), split="train",
                          segment_seconds=None)[0]
    crops = [ds[0] for _ in range(5)]
    starts = set()
    for crop in crops:
        # locate the crop in the full mixture, then check the sources were cut at the same place
        windows = full["mix"].unfold(0, 800, 1)
        start = int((windows - crop["mix"]).abs().sum(1).argmin())
        torch.testing.assert_close(crop["sources"], full["sources"][:, start:start + 800])
        starts.add(start)
    assert len(starts) > 1


def test_classification_round_trip_and_resampling(tmp_path):
    synth = DATASETS.build("synth_events", split="valid", sample_rate=16000,
                           segment_seconds=0.2, num_examples=13)
    write_dataset(synth, tmp_path)
    assert (tmp_path / "labels.txt").read_text().split() == synth.labels
    back = DATASETS.build("manifest_classification", root=str(tmp_path), split="valid",
                          sample_rate=16000)
    assert back.labels == synth.labels and len(back) == 13
    for i in (0, 7, 12):
        ours, theirs = synth[i], back[i]
        assert theirs["id"] == ours["id"] and theirs["label"].dtype == torch.int64
        assert int(theirs["label"]) == int(ours["label"])
        torch.testing.assert_close(theirs["wav"], ours["wav"], rtol=0, atol=LSB)

    # files at 16 kHz read at 8 kHz are resampled (compare with torchaudio directly)
    import torchaudio.functional as AF

    low = DATASETS.build("manifest_classification", root=str(tmp_path), split="valid",
                         sample_rate=8000)
    expected = AF.resample(back[3]["wav"], 16000, 8000)
    torch.testing.assert_close(low[3]["wav"], expected, rtol=0, atol=1e-6)

    # without labels.txt the class list comes from the CSV's (label, category) pairs
    (tmp_path / "labels.txt").unlink()
    again = DATASETS.build("manifest_classification", root=str(tmp_path), split="valid")
    assert again.labels == synth.labels


def test_missing_root_and_csv_raise_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"^data.root: folder .* not found"):
        DATASETS.build("manifest_separation", root=str(tmp_path / "nope"), split="test")
    with pytest.raises(ConfigError, match=r"^data.root: .*valid.csv not found"):
        DATASETS.build("manifest_classification", root=str(tmp_path), split="valid")
    (tmp_path / "test.csv").write_text("id,path\nx,a.wav\n")
    with pytest.raises(ConfigError, match="lacks column 'label'"):
        DATASETS.build("manifest_classification", root=str(tmp_path), split="test")


def test_manifest_naming_a_missing_file_fails_when_built(tmp_path):
    synth = DATASETS.build("synth_mix", split="test", num_speakers=2, sample_rate=8000,
                           segment_seconds=0.1, num_examples=2)
    write_dataset(synth, tmp_path)
    with open(tmp_path / "test.csv", newline="") as handle:
        gone = tmp_path / list(csv.DictReader(handle))[1]["s1_path"]
    gone.unlink()
    with pytest.raises(ConfigError, match=r"^data\.root: 1 of the 6 audio files the test split "
                                          r"names are missing \(first: .*" + gone.name):
        DATASETS.build("manifest_separation", root=str(tmp_path), split="test")


def test_command_line_writes_a_readable_set(tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["write-dataset", "--dataset", "synth_mix", "--out", str(out), "--split", "valid",
                 "--num-examples", "2", "--segment-seconds", "0.2",
                 "--set", "num_speakers=2"]) == 0
    assert "wrote 2 examples" in capsys.readouterr().out
    ds = DATASETS.build("manifest_separation", root=str(out), split="valid", segment_seconds=None)
    assert ds[1]["sources"].shape == (2, 1600)
    # an existing manifest is not overwritten silently
    assert main(["write-dataset", "--dataset", "synth_mix", "--out", str(out), "--split", "valid",
                 "--num-examples", "2"]) == 1
    assert "already exists" in capsys.readouterr().err
    with pytest.raises(OutputError):
        write_dataset(DATASETS.build("synth_mix", split="valid", num_examples=1), out)
    assert main(["write-dataset", "--dataset", "synth_mix", "--out", str(out),
                 "--set", "bogus=1"]) == 1
    assert "data.bogus" in capsys.readouterr().err
    assert main(["write-dataset", "--dataset", "synth_mix", "--out", str(out),
                 "--set", "num_speakers"]) == 1
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main(["write-dataset", "--dataset", "synth_mix", "--out", str(out),
                 "--set", "gain_db_range=[0,"]) == 1
    assert capsys.readouterr().err == (
        "audionets write-dataset: error: --set 'gain_db_range=[0,': '[0,' is not a YAML value; "
        "e.g. --set gain_db_range=[0,5]\n")
    with pytest.raises(SystemExit):  # argparse: usage and the message, exit status 2
        main(["write-dataset", "--dataset", "synth_mix", "--out", str(out),
              "--segment-seconds", "[1,"])
    assert "--segment-seconds: '[1,' is not a YAML value" in capsys.readouterr().err
    np.testing.assert_equal(sorted(p.name for p in out.iterdir()), ["valid", "valid.csv"])


def test_write_dataset_runs_as_a_real_process(tmp_path):
    # the installed entry point, in a fresh interpreter (each dataset registers exactly once)
    proc = subprocess.run(
        [sys.executable, "-m", "audionets", "write-dataset", "--dataset", "synth_events",
         "--out", str(tmp_path / "ev"), "--split", "test", "--num-examples", "3"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote 3 examples and {tmp_path / 'ev' / 'test.csv'}"
    back = DATASETS.build("manifest_classification", root=str(tmp_path / "ev"), split="test")
    assert len(back) == 3 and back.labels[:2] == ["tone", "chirp_up"]


def test_write_dataset_values_are_read_like_config_overrides():
    from audionets.cli.write_dataset import _yaml_value

    # the config loader's YAML: 1e-3 is a number, as in trainer overrides (plain YAML: a string)
    assert _yaml_value("1e-3") == 0.001 and _yaml_value("[0, 5]") == [0, 5]
    assert _yaml_value("null") is None and _yaml_value("white") == "white"
