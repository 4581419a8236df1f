"""Classifier: probabilities, files at other rates / channel counts, short clips, bad input."""

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as taf

import audionets.models  # noqa: F401  (registers the models)
from audionets.errors import AudioError, CheckpointError
from audionets.inference import Classifier
from audionets.registry import MODELS

RATE = 8000
LABELS = ["dog", "siren", "bird", "engine"]


def tiny_cnn():
    return MODELS.build("td_cnn", num_classes=len(LABELS), sample_rate=RATE, channels=[8, 8],
                        kernel_sizes=[40, 3], strides=[4, 1], pool=4).eval()


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return Classifier(tiny_cnn(), RATE, LABELS, min_seconds=0.25)


def test_probabilities_are_the_softmax_of_the_logits(classifier):
    wav = torch.randn(3, RATE) * 0.1
    probs = classifier.classify_batch(wav)
    with torch.no_grad():
        ref = torch.softmax(classifier.model(wav), dim=-1)
    torch.testing.assert_close(probs, ref)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3))


def test_short_clips_are_zero_padded_to_the_minimum_length(classifier):
    wav = torch.randn(1, 80) * 0.1  # 0.01 s
    padded = torch.nn.functional.pad(wav, (0, classifier.min_samples - 80))
    with torch.no_grad():
        ref = torch.softmax(classifier.model(padded), dim=-1)
    torch.testing.assert_close(classifier.classify_batch(wav), ref)


def test_classify_file_resamples_downmixes_and_ranks(classifier, tmp_path):
    stereo = (np.random.default_rng(0).standard_normal((2, 16000)) * 0.1).astype(np.float32)
    path = tmp_path / "clip.flac"
    sf.write(str(path), stereo.T, 16000, subtype="PCM_24")
    stored = torch.from_numpy(sf.read(str(path), dtype="float32")[0].T)
    mono = taf.resample(stored.mean(0, keepdim=True), 16000, RATE)
    probs = classifier.classify_batch(mono)[0]
    top = classifier.classify_file(path, top_k=3)
    order = probs.argsort(descending=True)[:3]
    assert [label for label, _ in top] == [LABELS[i] for i in order]
    np.testing.assert_allclose([p for _, p in top], probs[order].numpy(), rtol=1e-5)
    assert len(classifier.classify_file(path, top_k=10)) == len(LABELS)


def test_bad_input_raises_audio_errors(classifier, tmp_path):
    with pytest.raises(AudioError, match="batch, time"):
        classifier.classify_batch(torch.randn(100))
    wav = torch.randn(1, 100)
    wav[0, 3] = float("inf")
    with pytest.raises(AudioError, match="NaN or Inf"):
        classifier.classify_batch(wav)
    with pytest.raises(AudioError, match="missing.wav: file does not exist"):
        classifier.classify_file(tmp_path / "missing.wav")


def test_label_count_must_match_the_model():
    with pytest.raises(CheckpointError, match="3 labels for a model with 4 classes"):
        Classifier(tiny_cnn(), RATE, LABELS[:3])
