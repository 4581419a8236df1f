"""Models, each in its own module and registered in :data:`audionets.registry.MODELS`.

The model classes are exported here, as ``torchaudio.models`` does::

    from audionets.models import SepFormer, ConvAutoencoder

and so are the dual-path separators' config dataclasses and presets (as nanoGPT's ``GPTConfig``
and torchaudio's ``conv_tasnet_base``)::

    from audionets.models import DPRNN_PAPER, DualPathConfig, SepFormer
    model = SepFormer(DPRNN_PAPER, num_sources=3)
"""

import torch

from audionets.errors import ArgumentError, AudionetsError, ConfigError, first_line
from audionets.models.autoencoder import ConvAutoencoder
from audionets.models.classifiers import (
    AttentionClassifier,
    RecurrentClassifier,
    SpectrogramCNN,
    TimeDomainCNN,
    TimeFrequencyCNN,
)
from audionets.models.mlp import MLP, ResidualMLP
from audionets.models.rnn import MinimalGatedUnit
from audionets.models.sepformer import (
    DPRNN,
    DPRNN_PAPER,
    SEPFORMER_WSJ0_2MIX,
    DualPathConfig,
    LSTMPathModel,
    SepFormer,
    TransformerPathModel,
)
from audionets.models.sudormrf import SuDoRMRF
from audionets.registry import MODELS

__all__ = [
    "AttentionClassifier",
    "ConvAutoencoder",
    "DPRNN",
    "DPRNN_PAPER",
    "DualPathConfig",
    "LSTMPathModel",
    "MLP",
    "MinimalGatedUnit",
    "RecurrentClassifier",
    "ResidualMLP",
    "SEPFORMER_WSJ0_2MIX",
    "SepFormer",
    "SpectrogramCNN",
    "SuDoRMRF",
    "TimeDomainCNN",
    "TimeFrequencyCNN",
    "TransformerPathModel",
    "build_model",
]

#: a model config asking for more parameters than this is a typo (1e11 channels would try to
#: allocate terabytes); the largest shipped or recipe model has about 26 million
MAX_PARAMETERS = 2_000_000_000


def build_model(spec: dict):
    """Build a model from its config ``{"name": ..., **kwargs}``.

    This is the config layer's door to the models: a model names its bad arguments as Python
    keywords (:class:`~audionets.errors.ArgumentError`), and the ConfigError raised here names
    them as keys of the config's ``model`` section (``model.d_model``).

    ConfigError (naming ``model``) when the sizes are negative or of a wrong type, or when the
    model would have more than :data:`MAX_PARAMETERS` parameters: it is first built on the
    ``meta`` device, which allocates nothing, and counted (a model whose construction computes
    on data, such as a mel filterbank, cannot be built there and is only built for real).
    """
    spec = dict(spec)
    name = spec.pop("name")
    try:
        with torch.device("meta"):
            shell = MODELS.build(name, _where="model", **spec)
        count = sum(p.numel() for p in shell.parameters())
    except ArgumentError as err:
        raise ConfigError(err.keyed("model")) from None
    except AudionetsError:
        raise
    except Exception:  # noqa: BLE001 - the real build below reports what is wrong
        count = 0
    if count > MAX_PARAMETERS:
        raise ConfigError(f"model: {name!r} with these arguments has {count:.3g} parameters "
                          f"(more than {MAX_PARAMETERS:.0e}); check the sizes in the model "
                          "section")
    try:
        return MODELS.build(name, _where="model", **spec)
    except ArgumentError as err:
        raise ConfigError(err.keyed("model")) from None
    except (TypeError, ValueError, RuntimeError, OverflowError) as err:
        first = first_line(err, 200)
        raise ConfigError(f"model: cannot build {name!r} with these arguments ({first}); "
                          "check the sizes in the model section") from None
