"""Every real-dataset recipe trains end to end (two steps, shrunken model) on a fake layout.

The classifiers take ``num_classes`` from the data, so the fake layouts can have few classes.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import audionets.data.esc50  # noqa: F401  (registers the real-dataset layouts)
import audionets.data.librimix  # noqa: F401
import audionets.data.speech_commands  # noqa: F401
import audionets.data.urbansound8k  # noqa: F401
import audionets.data.wham  # noqa: F401
import audionets.data.wsj0mix  # noqa: F401
from audionets.cli import main
from audionets.data import speech_pool, tts_mix
from tests import fake_layouts as fake

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

COMMON = ["trainer.max_steps=2", "trainer.max_epochs=1", "trainer.batch_size=2",
          "trainer.valid_batch_size=1", "trainer.num_workers=0", "trainer.device=cpu",
          "trainer.limit_valid_batches=1", "trainer.progress=false"]
SMALL = {
    "tf_cnn": ["model.channels=[8,8]", "model.frontend.n_mels=16"],
    "cnn2d": ["model.channels=[4,8]", "model.frontend.n_mels=16"],
    "td_cnn": ["model.channels=[8,8]", "model.kernel_sizes=[80,3]", "model.strides=[4,1]"],
    "sepformer": ["model.encoder_channels=16", "model.d_model=16", "model.chunk_size=20",
                  "model.num_blocks=1", "model.intra_layers=1", "model.inter_layers=1",
                  "model.nhead=2", "model.d_ffn=32"],
    "dprnn": ["model.encoder_channels=16", "model.d_model=16", "model.chunk_size=20",
              "model.num_blocks=1", "model.lstm_hidden_size=8"],
    "sudormrf": ["model.encoder_channels=16", "model.channels=8", "model.hidden_channels=16",
                 "model.num_blocks=1"],
}


def _esc50(tmp: Path) -> tuple[Path, list[str]]:
    return fake.make_esc50(tmp, num_classes=4, seconds=0.25, rate=16000), [
        "data.segment_seconds=0.5"]


def _speech_commands(tmp: Path) -> tuple[Path, list[str]]:
    return fake.make_speech_commands(tmp, words=["yes", "no", "cat"], seconds=0.25), ["data.segment_seconds=0.5"]


def _urbansound8k(tmp: Path) -> tuple[Path, list[str]]:
    return fake.make_urbansound8k(tmp, num_classes=2, seconds=0.25, rates=(16000,)), [
        "data.segment_seconds=0.5"]


def _wsj0mix(tmp: Path) -> tuple[Path, list[str]]:
    return fake.make_wsj0mix(tmp, seconds=0.3), ["data.segment_seconds=0.25"]


def _librimix(tmp: Path) -> tuple[Path, list[str]]:
    return fake.make_librimix(tmp, seconds=0.3), ["data.segment_seconds=0.25"]


def _wham(tmp: Path) -> tuple[Path, list[str]]:
    return fake.make_wham(tmp, seconds=0.3), ["data.segment_seconds=0.25"]


def _tts_mix(tmp: Path) -> tuple[Path, list[str]]:
    if tts_mix.espeak_binary() is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    speech_pool.build(tmp, speech_pool.PoolSettings(num_utterances=40, engines=("espeak-ng",)),
                      progress=False)
    return tmp, ["data.segment_seconds=0.25", "data.num_mixtures=8", "data.pool=null",
                 "data.valid.num_mixtures=2", "data.test.num_mixtures=2",
                 "data.valid.segment_seconds=0.5", "data.test.segment_seconds=0.5"]


# kws_tts reads the Speech Commands layout: its config trains on the real data unchanged
LAYOUTS = {"esc50": _esc50, "speech_commands": _speech_commands, "kws_tts": _speech_commands,
           "urbansound8k": _urbansound8k, "wsj0mix": _wsj0mix, "librimix": _librimix, "wham": _wham, "tts_mix": _tts_mix}
CASES = [
    ("esc50", "config.yaml", "cnn2d"), ("esc50", "tf_cnn.yaml", "tf_cnn"),
    ("esc50", "td_cnn.yaml", "td_cnn"),
    ("speech_commands", "config.yaml", "cnn2d"), ("speech_commands", "td_cnn.yaml", "td_cnn"),
    ("speech_commands", "tf_cnn.yaml", "tf_cnn"), ("kws_tts", "config.yaml", "cnn2d"),
    ("urbansound8k", "config.yaml", "cnn2d"), ("urbansound8k", "tf_cnn.yaml", "tf_cnn"),
    ("urbansound8k", "td_cnn.yaml", "td_cnn"),
    ("wsj0mix", "config.yaml", "sepformer"), ("wsj0mix", "dprnn.yaml", "dprnn"),
    ("librimix", "config.yaml", "sepformer"), ("librimix", "dprnn.yaml", "dprnn"),
    ("wham", "config.yaml", "sepformer"), ("wham", "dprnn.yaml", "dprnn"),
    ("tts_mix", "config.yaml", "sepformer"), ("tts_mix", "dprnn.yaml", "dprnn"),
    ("tts_mix", "sudormrf_lite.yaml", "sudormrf"),
]


def test_every_recipe_config_is_covered():
    configs = {(p.parent.name, p.name) for name in LAYOUTS for p in (RECIPES / name).glob("*.yaml")}
    assert configs == {(recipe, config) for recipe, config, _ in CASES}


@pytest.mark.slow
@pytest.mark.parametrize("recipe, config, family", CASES,
                         ids=[f"{r}/{c}" for r, c, _ in CASES])
def test_recipe_trains_on_fake_layout(tmp_path, recipe, config, family):
    root, data_overrides = LAYOUTS[recipe](tmp_path / "data")
    exp = tmp_path / "exp"
    args = ["train", str(RECIPES / recipe / config), f"data.root={root}",
            f"experiment_dir={exp}", *COMMON, *SMALL[family], *data_overrides]
    assert main(args) == 0
    assert (exp / "checkpoints" / "last.pt").is_file()
    with open(exp / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows, "metrics.csv has no rows"
    test_metrics = json.loads((exp / "test_metrics.json").read_text())
    assert any(key.startswith("test_") for key in test_metrics)
