"""Every classifier family trains through ``audionets train`` (two steps on synth_events).

The MLPs see the raw waveform as a feature vector: ``in_features`` = samples per clip.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from audionets.cli import main
from audionets.serialization.checkpoints import load_checkpoint
from audionets.training.config import config_from_dict
from audionets.training.trainer import Trainer

SEGMENT = 0.05  # seconds at 16 kHz: 800 samples
MODELS = {
    "rnn_mgu": {"name": "rnn_classifier", "cell": "mgu", "hidden_size": 8, "num_layers": 1,
                "frontend": {"name": "logmel", "n_mels": 16, "hop_length": 160}},
    "rnn_lstm": {"name": "rnn_classifier", "cell": "lstm", "hidden_size": 8, "num_layers": 2,
                 "bidirectional": False, "pooling": "last",
                 "frontend": {"name": "stft", "n_fft": 64, "hop_length": 32}},
    "attention": {"name": "attention_classifier", "d_model": 16, "num_heads": 2,
                  "num_layers": 1, "ff_dim": 32,
                  "frontend": {"name": "logmel", "n_mels": 16, "hop_length": 160}},
    "mlp": {"name": "mlp", "in_features": 800, "width": 16, "depth": 2},
    "residual_mlp": {"name": "residual_mlp", "in_features": 800, "width": 16, "depth": 3},
}


@pytest.mark.parametrize("key", sorted(MODELS))
def test_classifier_family_trains_through_the_cli(key, tmp_path):
    config = {
        "task": "classification",
        "experiment_dir": str(tmp_path / "exp"),
        "sample_rate": 16000,
        "model": MODELS[key],
        "data": {"name": "synth_events", "segment_seconds": SEGMENT, "num_examples": 26,
                 "valid": {"num_examples": 13}, "test": {"num_examples": 13}},
        "optimizer": {"name": "adam", "lr": 1e-3},
        "trainer": {"max_steps": 2, "batch_size": 13, "device": "cpu", "progress": False},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path)]) == 0
    metrics = json.loads((tmp_path / "exp" / "test_metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    # the two optimizer steps moved every parameter away from the seeded initialisation
    trained = load_checkpoint(tmp_path / "exp" / "checkpoints" / "last.pt")["model"]
    config["experiment_dir"] = str(tmp_path / "fresh")
    initial = dict(Trainer(config_from_dict(config)).model.named_parameters())
    config["experiment_dir"] = str(tmp_path / "fresh2")
    again = dict(Trainer(config_from_dict(config)).model.named_parameters())
    assert all(torch.equal(v, again[k]) for k, v in initial.items())  # the seeded start
    assert initial.keys() <= trained.keys()
    unchanged = [k for k, v in initial.items() if torch.equal(v.detach(), trained[k])]
    assert not unchanged, unchanged
