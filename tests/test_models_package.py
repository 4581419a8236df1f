"""``audionets.models`` exports every registered model class by its class name."""

import pytest

import audionets.models as models
from audionets.errors import ConfigError
from audionets.registry import MODELS


def test_every_registered_model_is_exported():
    ours = [(name, MODELS.get(name)) for name in MODELS.names()]
    ours = [(name, cls) for name, cls in ours if cls.__module__.startswith("audionets.models.")]
    assert len(ours) >= 11  # tests register their own toy models too; those are not exported
    for name, cls in ours:
        assert getattr(models, cls.__name__) is cls, name
        assert cls.__name__ in models.__all__
    assert all(hasattr(models, name) for name in models.__all__)
    from audionets.models import ConvAutoencoder, SepFormer  # the torchaudio.models style

    assert isinstance(models.build_model({"name": "sepformer"}), SepFormer)
    assert MODELS.get("conv_autoencoder") is ConvAutoencoder


CLASSIFIER = {"num_classes": 3, "sample_rate": 8000}


@pytest.mark.parametrize("spec, python, yaml", [
    ({"name": "sudormrf", "num_blocks": 0}, "num_blocks must be an integer >= 1",
     "model.num_blocks must be an integer >= 1"),
    ({"name": "sudormrf", "encoder_stride": 40},
     "encoder_stride must be from 1 to encoder_kernel_size",
     "model.encoder_stride must be from 1 to model.encoder_kernel_size"),
    ({"name": "mlp", "in_features": 2, "num_classes": 2, "width": 0}, "width must be >= 1",
     "model.width must be >= 1"),
    ({"name": "conv_autoencoder", "channels": [4, 8], "kernel_sizes": 4, "strides": [2, 2, 2]},
     "strides has 3 entries but channels has 2", "model.strides has 3 entries but model.channels"),
    ({"name": "cnn2d", **CLASSIFIER, "channels": [4, 8], "pool": [2, 2, 2]},
     "pool has 3 entries but channels has 2", "model.pool has 3 entries but model.channels"),
    ({"name": "tf_cnn", **CLASSIFIER, "channels": [8], "activation": "step"},
     "unknown activation 'step'", "unknown model.activation 'step'"),
    ({"name": "attention_classifier", **CLASSIFIER, "d_model": 10, "num_heads": 3},
     "d_model=10 must be divisible by num_heads=3",
     "model.d_model=10 must be divisible by model.num_heads=3"),
    ({"name": "rnn_classifier", **CLASSIFIER, "input_norm": "layer"}, "unknown input_norm 'layer'",
     "unknown model.input_norm 'layer'"),
    ({"name": "tf_cnn", **CLASSIFIER, "channels": [8], "frontend": {"name": "logmel", "bins": 3}},
     "unknown key frontend.bins; frontend accepts",
     "unknown key model.frontend.bins; model.frontend accepts"),
    ({"name": "tf_cnn", **CLASSIFIER, "channels": [8],
      "frontend": {"name": "stft", "n_fft": 64, "win_length": 128}},
     "frontend.win_length=128 must be <= n_fft=64", "model.frontend.win_length=128"),
])
def test_model_errors_name_arguments_and_the_config_names_keys(spec, python, yaml):
    """A Python user building a model sees its keyword arguments (a ValueError, never
    ``model.``); a config user sees the keys of the config's model section."""
    kwargs = {key: value for key, value in spec.items() if key != "name"}
    with pytest.raises(ValueError) as caught:
        MODELS.get(spec["name"])(**kwargs)
    assert str(caught.value).startswith(python) and "model." not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        models.build_model(spec)
    assert yaml in str(caught.value)
