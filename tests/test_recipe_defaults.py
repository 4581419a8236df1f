"""Each classification recipe's default model and schedule learns a small, clean 10-class set
in its layout (issue 14): not only the full data set it was written for.

The sets are ten synth_events classes without background (tests/fake_layouts.clean_event:
pitch, onset, duration and level vary from clip to clip), 0.5 s clips, a few hundred clips per
set. Only the data and the machine-specific trainer keys are overridden: model, optimizer,
scheduler, epochs, min_steps, batch size and the training augmentation are the recipe's own.
Each training takes 60-110 s of CPU time. Gated: at the default seed ESC-50 reaches 0.963 and
UrbanSound8K 0.950, but Speech Commands 0.850, and other seeds fall below 95 % on each layout
(the recipe READMEs, "Defaults that learn small sets", give the figures over seeds).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import audionets.data  # noqa: F401  (registers the layouts)
from audionets.cli import main
from tests import fake_layouts as fake

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
SECONDS = 0.5
MACHINE = ["trainer.num_workers=0", "trainer.device=cpu", "trainer.progress=false"]


def _esc50(root: Path) -> list[str]:
    # 8 clips per class and fold: train 240, valid 80, test 80 (the set)
    fake.make_esc50(root, num_classes=10, clips_per_fold=8, rate=16000, seconds=SECONDS,
                    clip=fake.clean_event)
    return []


def _urbansound8k(root: Path) -> list[str]:
    # 4 clips per class and fold: train 320, valid 40, test 40; 44.1 / 22.05 kHz, some stereo
    fake.make_urbansound8k(root, num_classes=10, clips_per_fold=4, seconds=SECONDS,
                           clip=fake.clean_event)
    return []


def _speech_commands(root: Path) -> list[str]:
    # 30 clips per "word": train 18, valid 6, test 6 each; background noise added in training
    fake.make_speech_commands(root, words=fake.SPEECH_COMMANDS_WORDS[:10], clips_per_word=30,
                              seconds=SECONDS, clip=fake.clean_event)
    return []


LAYOUTS = {"esc50": _esc50, "urbansound8k": _urbansound8k, "speech_commands": _speech_commands}


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("AUDIONETS_LONG_TESTS"),
                    reason="three 500-640-step trainings (60-110 s of CPU each): set "
                           "AUDIONETS_LONG_TESTS=1; not yet 95 % on every layout and seed "
                           "(the recipe READMEs, issue 14)")
@pytest.mark.parametrize("recipe", sorted(LAYOUTS))
def test_recipe_default_learns_a_small_clean_10_class_set(recipe, tmp_path):
    root = tmp_path / "data"
    data_overrides = LAYOUTS[recipe](root)
    exp = tmp_path / "exp"
    assert main(["train", str(RECIPES / recipe / "config.yaml"), f"data.root={root}",
                 f"experiment_dir={exp}", f"data.segment_seconds={SECONDS}", *MACHINE,
                 *data_overrides]) == 0
    accuracy = json.loads((exp / "test_metrics.json").read_text())["test_accuracy"]
    assert accuracy >= 0.95, f"{recipe}: test accuracy {accuracy:.3f}"
