"""The synthetic-data recipes (synth_sep, synth_events, autoencoder) train end to end for two steps.

The models are shrunk by overrides; everything else (data, loss, optimizer, scheduler) is the
recipe's own config, so a key the engine or a constructor does not accept fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from audionets.cli import main
from audionets.models import build_model

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

COMMON = ["trainer.max_steps=2", "trainer.max_epochs=1", "trainer.batch_size=2",
          "trainer.valid_batch_size=1", "trainer.num_workers=0", "trainer.device=cpu",
          "trainer.limit_valid_batches=1", "trainer.progress=false",
          "data.num_examples=4", "data.valid.num_examples=2", "data.test.num_examples=2"]

TINY_SEPFORMER = ["model.encoder_channels=8", "model.d_model=8", "model.nhead=2", "model.d_ffn=16",
                  "model.chunk_size=10", "model.num_blocks=1", "data.segment_seconds=0.25",
                  "data.test.segment_seconds=0.3"]

CASES = {
    "synth_sep/config.yaml": TINY_SEPFORMER,
    "synth_sep/3spk.yaml": TINY_SEPFORMER,
    "synth_sep/sepformer_large.yaml": [*TINY_SEPFORMER, "model.intra_layers=1",
                                       "model.inter_layers=1"],
    "synth_sep/dprnn.yaml": ["model.encoder_channels=8", "model.d_model=8", "model.num_blocks=1",
                             "model.lstm_hidden_size=4", "model.chunk_size=10",
                             "data.segment_seconds=0.25"],
    "synth_events/config.yaml": ["model.channels=[8,8]", "model.pool=[1,2]",
                                 "model.frontend.n_mels=16", "data.segment_seconds=0.25"],
    "synth_events/td_cnn.yaml": ["model.channels=[8,8]", "model.kernel_sizes=[80,3]",
                                 "model.strides=[4,1]", "data.segment_seconds=0.25"],
    "autoencoder/config.yaml": ["model.channels=[4,4,4]", "model.bottleneck_channels=2",
                                "data.segment_seconds=0.25",
                                "data.test.segment_seconds=0.3"],
}


@pytest.mark.parametrize("recipe", sorted(CASES))
def test_recipe_trains_two_steps_and_evaluates(recipe, tmp_path):
    exp = tmp_path / "exp"
    status = main(["train", str(RECIPES / recipe), f"experiment_dir={exp}", *COMMON,
                   *CASES[recipe]])
    assert status == 0
    assert (exp / "checkpoints" / "last.pt").is_file()
    metrics = json.loads((exp / "test_metrics.json").read_text())
    assert all(value == value for value in metrics.values() if isinstance(value, float))
    config = yaml.safe_load((exp / "config.yaml").read_text())
    model = build_model(config["model"])  # the stored config rebuilds the model
    if config["task"] == "classification":
        assert config["model"]["num_classes"] == len(config["labels"]) == 13
        assert model.sample_rate == config["sample_rate"] == 16000
    else:
        assert model.sample_rate == config["sample_rate"] == 8000
    if config["task"] == "separation":
        assert model.num_sources == config["data"]["num_speakers"]


@pytest.mark.parametrize("recipe", sorted(CASES))
def test_recipe_models_build_at_full_size(recipe):
    config = yaml.safe_load((RECIPES / recipe).read_text())
    spec = dict(config["model"], sample_rate=config["sample_rate"])
    if config["task"] == "classification":
        spec["num_classes"] = 13
    if config["task"] == "separation":
        spec["num_sources"] = config["data"]["num_speakers"]
    model = build_model(spec)
    assert sum(p.numel() for p in model.parameters()) > 10_000


def test_pitch_gap_breakdown_of_an_evaluation(tmp_path):
    import subprocess
    import sys

    from audionets.data.speech import speaker_pool

    pool = speaker_pool("test", 0)
    close = min(((a, b) for a in pool for b in pool if a is not b),
                key=lambda p: abs(p[0].f0_mean / p[1].f0_mean - 1))
    far = max(((a, b) for a in pool for b in pool), key=lambda p: p[0].f0_mean / p[1].f0_mean)
    rows = [("x-spk%d_spk%d" % (a.speaker_id, b.speaker_id), v)
            for (a, b), v in ((close, 2.0), (far, 9.0), (far, 11.0))]
    path = tmp_path / "test.csv"
    path.write_text("id,si_snr,si_snri\n" + "".join(f"{i},0,{v}\n" for i, v in rows))
    out = subprocess.run([sys.executable, str(RECIPES / "synth_sep/by_pitch_gap.py"), str(path)],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    bands = {line.split()[0]: line.split()[-2:] for line in out[1:]}
    assert bands["0"] == ["1", "2.00"] and bands["8"] == ["2", "10.00"]
