"""Per-file evaluation: metric values vs NumPy, PIT, silent references, confusion, the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from audionets import hub
from audionets.hub import ModelMeta, save_pretrained
from audionets.training.evaluate import evaluate, format_summary, write_confusion, write_json


def np_si_snr(est: np.ndarray, ref: np.ndarray) -> float:
    est, ref = est - est.mean(), ref - ref.mean()
    proj = (est @ ref) / (ref @ ref) * ref
    return float(10 * np.log10((proj @ proj) / ((est - proj) @ (est - proj))))


def separation_items(n: int = 3, length: int = 1600) -> list[dict]:
    gen = torch.Generator().manual_seed(1)
    items = []
    for i in range(n):
        sources = torch.randn(2, length, generator=gen) * torch.tensor([[1.0], [0.5]])
        items.append({"mix": sources.sum(0), "sources": sources, "id": f"utt{i}"})
    return items


class MixtureCopies(nn.Module):
    """Returns the (scaled) mixture as every source: SI-SNRi is exactly 0."""

    def forward(self, mix):
        return torch.stack([mix, 0.5 * mix], dim=1)


class Oracle(nn.Module):
    """Returns the true sources (plus -80 dB of noise) in swapped order (PIT must undo it)."""

    def __init__(self, items):
        super().__init__()
        self.items = items

    def forward(self, mix):
        item = next(it for it in self.items if torch.equal(it["mix"], mix[0]))
        gen = torch.Generator().manual_seed(0)
        noise = 1e-4 * torch.randn(item["sources"].shape, generator=gen)
        return (item["sources"] + noise).flip(0)[None]


def test_separation_metrics_match_numpy():
    items = separation_items()
    result = evaluate(MixtureCopies(), "separation", items)
    assert [r["id"] for r in result.rows] == ["utt0", "utt1", "utt2"]
    for item, row in zip(items, result.rows):
        mix, srcs = item["mix"].numpy(), item["sources"].numpy()
        expected = np.mean([np_si_snr(mix, s) for s in srcs])
        assert row["si_snr"] == pytest.approx(expected, abs=1e-3)
        assert row["si_snri"] == pytest.approx(0.0, abs=1e-3)
        assert row["sdri"] == pytest.approx(0.0, abs=1e-2)  # BSS Eval is scale-invariant too
    values = np.array([r["si_snr"] for r in result.rows])
    stats = result.summary["si_snr"]
    assert stats["mean"] == pytest.approx(values.mean())
    assert stats["median"] == pytest.approx(np.median(values))
    assert stats["std"] == pytest.approx(values.std())
    assert stats["count"] == 3


def test_permutation_is_solved_before_scoring():
    items = separation_items(2)
    result = evaluate(Oracle(items), "separation", items)
    for row in result.rows:
        assert row["si_snr"] > 70 and row["sdr"] > 70 and row["si_snri"] > 60


def test_silent_reference_is_skipped_with_a_note(tmp_path):
    items = separation_items(3)
    items[1]["sources"][1] = 0.0
    items[1]["mix"] = items[1]["sources"].sum(0)
    result = evaluate(MixtureCopies(), "separation", items)
    row = result.rows[1]
    assert row["note"] == "reference is silent"
    assert all(row[k] is None for k in ("si_snr", "si_snri", "sdr", "sdri"))
    assert result.summary["si_snr"]["count"] == 2
    assert all(np.isfinite(v) for s in result.summary.values() if "mean" in s
               for v in (s["mean"], s["median"], s["std"]))
    assert result.summary["notes"] == {"reference is silent": 1}
    write_json(result.summary, tmp_path / "s.json")  # would raise on NaN
    assert "1 file(s) skipped: reference is silent" in format_summary(result)


def test_items_too_short_for_sdr_keep_si_snr_with_a_note():
    items = separation_items(2) + separation_items(1, length=300)
    result = evaluate(MixtureCopies(), "separation", items)
    short = result.rows[2]
    assert short["sdr"] is None and short["si_snr"] is not None
    assert short["note"] == "too short for SDR (<= 512 samples)"
    assert result.summary["sdr"]["count"] == 2 and result.summary["si_snr"]["count"] == 3


class FixedLogits(nn.Module):
    def __init__(self, predictions):
        super().__init__()
        self.predictions = iter(predictions)

    def forward(self, wav):
        logits = torch.zeros(1, 3)
        logits[0, next(self.predictions)] = 1.0
        return logits


def test_classification_accuracy_and_confusion(tmp_path):
    labels_true = [0, 0, 1, 2, 2, 2]
    predicted = [0, 1, 1, 2, 0, 2]
    items = [{"wav": torch.randn(100), "label": torch.tensor(t), "id": str(i)}
             for i, t in enumerate(labels_true)]
    result = evaluate(FixedLogits(predicted), "classification", items, labels=["a", "b", "c"])
    expected = np.zeros((3, 3), dtype=int)
    for t, p in zip(labels_true, predicted):
        expected[t, p] += 1
    assert np.array_equal(result.confusion, expected)
    assert result.summary["accuracy"]["mean"] == pytest.approx(4 / 6)
    assert [r["prediction"] for r in result.rows] == ["a", "b", "b", "c", "a", "c"]
    write_confusion(result, tmp_path / "c.csv", tmp_path / "c.png")
    rows = list(csv.reader((tmp_path / "c.csv").open()))
    assert rows[0] == ["true \\ predicted", "a", "b", "c"]
    assert [list(map(int, r[1:])) for r in rows[1:]] == expected.tolist()
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    text = format_summary(result)
    assert "confusion matrix" in text
    # accuracy is a mean of 0/1 values: its line has the mean and the count only
    assert text.splitlines()[1].split() == ["accuracy", "0.6667", "6"]


def test_classes_of_model_and_data_must_agree():
    from audionets.errors import ConfigError

    class Items(list):
        labels = ["x", "y"]

    items = Items([{"wav": torch.randn(100), "label": torch.tensor(0), "id": "0"}])
    with pytest.raises(ConfigError, match="classes differ"):
        evaluate(FixedLogits([0]), "classification", items, labels=["a", "b", "c"])


class Half(nn.Module):
    def forward(self, wav):
        return 0.5 * wav


def test_reconstruction_snr_and_silent_input():
    items = [{"wav": torch.randn(400), "id": "a"}, {"wav": torch.zeros(400), "id": "silent"}]
    result = evaluate(Half(), "reconstruction", items)
    assert result.rows[0]["snr"] == pytest.approx(20 * np.log10(2), abs=1e-4)  # |t|^2/|t/2|^2
    assert result.rows[1] == {"id": "silent", "snr": None, "note": "reference is silent"}
    assert result.summary["snr"]["count"] == 1


TINY_SEPFORMER = {"name": "sepformer", "num_sources": 2, "sample_rate": 8000, "encoder_channels": 8,
                  "d_model": 8, "chunk_size": 10, "num_blocks": 1, "intra_layers": 1,
                  "inter_layers": 1, "nhead": 2, "d_ffn": 16}


def test_cli_writes_rows_and_summary(tmp_path, capsys, monkeypatch):
    from audionets.cli import main

    config = {"task": "separation", "sample_rate": 8000, "model": TINY_SEPFORMER}
    model = hub.build_from_config(config, "test")
    save_pretrained(model, ModelMeta("separation", 8000, config=config), tmp_path / "m")
    code = main(["evaluate", str(tmp_path / "m"), "--data", "synth_mix", "--device", "cpu",
                 "data.num_examples=3", "data.segment_seconds=0.25", "--no-sdr",
                 "--out", str(tmp_path / "rows.csv"), "--json", str(tmp_path / "summary.json")])
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "rows.csv").open()))
    assert len(rows) == 3 and set(rows[0]) == {"id", "si_snr", "si_snri"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["files"] == 3 and summary["split"] == "test"
    assert summary["model"] == str(tmp_path / "m") and summary["data"] == "synth_mix"
    assert summary["model_path"] == str(tmp_path / "m")
    values = np.array([float(r["si_snri"]) for r in rows])
    assert summary["summary"]["si_snri"]["mean"] == pytest.approx(values.mean(), abs=1e-4)
    assert "si_snri" in capsys.readouterr().out
    # inside the working directory the path is recorded relative to it (shareable files)
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "m", "--data", "synth_mix", "--device", "cpu", "data.num_examples=1",
                 "data.segment_seconds=0.25", "--no-sdr", "--json", "again.json"]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["model_path"] == "m"
    # a recipe config as --data, with a config override
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"task": "separation", "sample_rate": 8000,
                                      "model": TINY_SEPFORMER,
                                      "data": {"name": "synth_mix", "segment_seconds": 0.25,
                                               "test": {"num_examples": 2}}}))
    assert main(["evaluate", str(tmp_path / "m"), "--data", str(recipe), "--device", "cpu",
                 "--no-sdr", "--split", "test"]) == 0
    assert "(test, 2 files)" in capsys.readouterr().out
    # existing outputs are kept unless --overwrite; unknown datasets are named
    assert main(["evaluate", str(tmp_path / "m"), "--data", "synth_mix",
                 "--out", str(tmp_path / "rows.csv")]) == 1
    assert main(["evaluate", str(tmp_path / "m"), "--data", "nonexistent_set"]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "neither a config file nor a dataset name" in err


def test_long_evaluations_without_a_terminal_log_their_progress(monkeypatch, caplog):
    import audionets.training.evaluate as evaluation

    monkeypatch.setattr(evaluation, "LOG_INTERVAL_S", -1.0)  # every item counts as "long"
    with caplog.at_level("INFO", logger="audionets.evaluate"):
        evaluate(MixtureCopies(), "separation", separation_items(3), sdr=False)
    assert [r.getMessage() for r in caplog.records] == [
        "evaluate: 1/3 files", "evaluate: 2/3 files", "evaluate: 3/3 files"]


def test_cli_shifts_scores_the_shift_averaged_separator(tmp_path, capsys):
    """``evaluate --shifts 2`` scores what ``Separator(shifts=2)`` outputs, records the count,
    and is a one-line error for a classifier."""
    from audionets.cli import main
    from audionets.data.mixtures import SynthMix
    from audionets.inference import Separator
    from audionets.metrics import si_snr_improvement

    config = {"task": "separation", "sample_rate": 8000, "model": TINY_SEPFORMER}
    torch.manual_seed(0)
    model = hub.build_from_config(config, "test")
    save_pretrained(model, ModelMeta("separation", 8000, config=config), tmp_path / "m")
    args = ["evaluate", str(tmp_path / "m"), "--data", "synth_mix", "--device", "cpu",
            "data.num_examples=2", "data.segment_seconds=0.25", "--no-sdr"]
    assert main(args + ["--shifts", "2", "--json", str(tmp_path / "s.json")]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["shifts"] == 2
    separator = Separator.from_pretrained(tmp_path / "m", shifts=2)
    dataset = SynthMix(split="test", num_examples=2, segment_seconds=0.25, sample_rate=8000)
    expected = []
    for item in dataset:
        est = separator.separate_batch(item["mix"][None])[0].T
        best = max(float(si_snr_improvement(e, item["sources"], item["mix"]).mean())
                   for e in (est, est.flip(0)))
        expected.append(best)
    assert summary["summary"]["si_snri"]["mean"] == pytest.approx(np.mean(expected), abs=1e-3)
    assert main(args + ["--json", str(tmp_path / "one.json")]) == 0
    assert json.loads((tmp_path / "one.json").read_text())["shifts"] == 1
    assert (json.loads((tmp_path / "one.json").read_text())["summary"]["si_snri"]["mean"]
            != pytest.approx(np.mean(expected), abs=1e-3))
    capsys.readouterr()
    classifier = {"task": "classification", "sample_rate": 8000,
                  "model": {"name": "tf_cnn", "num_classes": 2, "sample_rate": 8000,
                            "channels": [4]}}
    save_pretrained(hub.build_from_config(classifier, "test"),
                    ModelMeta("classification", 8000, config=classifier, labels=["a", "b"]),
                    tmp_path / "c")
    assert main(["evaluate", str(tmp_path / "c"), "--data", "synth_events", "--shifts", "2",
                 "--limit", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"audionets evaluate: error: --shifts applies to separation models; "
                   f"{tmp_path / 'c'} is a classification model"]
