"""``audionets.models`` exports every registered model class by its class name."""

import audionets.models as models
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
