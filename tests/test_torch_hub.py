"""hubconf.py: torch.hub.load(repo_dir, ..., source="local") returns ready models, offline."""

from pathlib import Path

import torch

from audionets.inference import Classifier, Separator

REPO = Path(__file__).resolve().parents[1]


def test_hub_separator_is_the_shipped_model_ready_to_use(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing read from or written to ~/.cache
    separator = torch.hub.load(str(REPO), "separator", source="local")
    assert isinstance(separator, Separator) and separator.num_sources == 2
    reference = Separator.from_pretrained("sudormrf-tts-2spk")
    mix = torch.randn(1, 8000)
    torch.testing.assert_close(separator.separate_batch(mix), reference.separate_batch(mix))


def test_hub_classifier_is_the_shipped_model_ready_to_use(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    classifier = torch.hub.load(str(REPO), "classifier", source="local")
    assert isinstance(classifier, Classifier) and len(classifier.labels) == 13
    probs = classifier.classify_batch(torch.randn(2, 16000))
    assert probs.shape == (2, 13)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
