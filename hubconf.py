"""torch.hub entry points: ready-to-use audionets models, with the weights shipped in the repo.

::

    import torch
    sep = torch.hub.load("<owner>/audionets", "separator")          # or a local clone:
    sep = torch.hub.load("path/to/audionets", "separator", source="local")
    sources = sep.separate_batch(mix)           # [B, T] at sep.sample_rate -> [B, T, S]
    clf = torch.hub.load("path/to/audionets", "classifier", source="local")
    clf.classify_file("dog.wav", top_k=3)

Each entry returns an :class:`audionets.Separator` / :class:`audionets.Classifier` (the
``torch.nn.Module`` is its ``.model``). ``model`` takes anything ``from_pretrained`` does:
a shipped model name (no network), a model, experiment or exported ONNX folder, or a hub id.
"""

dependencies = ["torch", "torchaudio", "soundfile", "numpy", "yaml", "safetensors",
                "asteroid_filterbanks"]


def separator(model: str = "sudormrf-tts-2spk", device: str = "cpu", **kwargs):
    """A speech separator (default: the shipped 2-speaker SuDoRM-RF, 8 kHz, trained on synthesized speech)."""
    from audionets.inference import Separator

    return Separator.from_pretrained(model, device=device, **kwargs)


def classifier(model: str = "cnn-synth-events", device: str = "cpu", **kwargs):
    """An audio-event classifier (default: the shipped 13-class CNN, 16 kHz)."""
    from audionets.inference import Classifier

    return Classifier.from_pretrained(model, device=device, **kwargs)
