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


def test_long_files_are_classified_window_by_window(tmp_path):
    # 2.6 s with 1 s windows: two full windows and a 0.6 s one, weighted by their lengths
    torch.manual_seed(0)
    classifier = Classifier(tiny_cnn(), RATE, LABELS, min_seconds=0.25, window_seconds=1.0,
                            batch_size=1)
    wav = torch.from_numpy(
        (np.random.default_rng(1).standard_normal(int(2.6 * RATE)) * 0.2).astype(np.float32))
    wav[RATE:2 * RATE] *= 5  # the windows differ
    path = tmp_path / "long.wav"
    sf.write(str(path), wav.numpy(), RATE, subtype="FLOAT")
    windows = [wav[:RATE], wav[RATE:2 * RATE], wav[2 * RATE:]]
    expected = sum(classifier.classify_batch(w[None])[0] * len(w) for w in windows) / len(wav)
    top = classifier.classify_file(path, top_k=len(LABELS))
    got = torch.tensor([dict(top)[label] for label in LABELS])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, classifier.classify_batch(wav[None])[0], atol=1e-3)
    # batching the windows changes nothing, and a file of one window is one pass
    batched = Classifier(classifier.model, RATE, LABELS, min_seconds=0.25, window_seconds=1.0,
                         batch_size=2)
    calls = []
    again = batched.classify_file(path, top_k=4, progress=lambda *done: calls.append(done))
    assert calls == [(2, 3), (3, 3)]  # after each batch of windows: 2, then the shorter last
    assert [label for label, _ in again] == [label for label, _ in top]
    assert [p for _, p in again] == pytest.approx([p for _, p in top], rel=1e-5)
    one = Classifier(classifier.model, RATE, LABELS, min_seconds=0.25, window_seconds=3.0)
    whole = one.classify_file(path, top_k=4)
    reference = classifier.classify_batch(wav[None])[0]
    assert [p for _, p in whole] == pytest.approx(sorted(reference.tolist(), reverse=True),
                                                  rel=1e-5)


def test_from_pretrained_windows_like_the_training_crops(tmp_path):
    from audionets.hub import ModelMeta, save_pretrained

    config = {"task": "classification", "sample_rate": RATE, "labels": LABELS,
              "data": {"segment_seconds": 0.5},
              "model": {"name": "td_cnn", "num_classes": len(LABELS), "sample_rate": RATE,
                        "channels": [8, 8], "kernel_sizes": [40, 3], "strides": [4, 1],
                        "pool": 4}}
    save_pretrained(tiny_cnn(), ModelMeta("classification", RATE, LABELS, config), tmp_path)
    loaded = Classifier.from_pretrained(tmp_path)
    assert loaded.window_seconds == 0.5 and loaded.min_samples == RATE // 2
