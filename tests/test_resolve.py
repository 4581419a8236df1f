"""resolve_config: the keys a config implies (sample rate, sources, classes), without I/O."""

from __future__ import annotations

import copy

import pytest
from torch import nn

from audionets.errors import ConfigError
from audionets.registry import DATASETS, MODELS
from audionets.training.config import config_from_dict
from audionets.training.resolve import accepts, resolve_config
from audionets.training.trainer import load_registries

load_registries()


@MODELS.register("test_resolve_plain_net")
class PlainNet(nn.Module):
    """Takes neither a sample rate nor a number of sources."""

    def __init__(self, num_classes: int = 2, width: int = 4) -> None:
        super().__init__()


@DATASETS.register("test_resolve_plain_data")
class PlainData:
    """Takes no sample rate."""

    def __init__(self, split: str = "train", num_examples: int = 2) -> None:
        pass


def config(task: str = "separation", **sections):
    raw = {"task": task, "model": {"name": "sepformer"},
           "data": {"name": "synth_mix", "num_speakers": 3}, **sections}
    return config_from_dict(raw)


def test_the_sample_rate_and_the_sources_go_to_the_model_and_the_data():
    given = config(sample_rate=16000, data={"name": "synth_mix", "num_speakers": 3,
                                            "valid": {"num_examples": 4}})
    before = copy.deepcopy(given.to_dict())
    resolved = resolve_config(given)
    assert resolved.sample_rate == 16000
    assert resolved.model == {"name": "sepformer", "sample_rate": 16000, "num_sources": 3}
    assert resolved.data_kwargs("valid") == {"num_speakers": 3, "sample_rate": 16000,
                                             "num_examples": 4}
    assert resolved.labels is None
    assert given.to_dict() == before  # pure: the config given is not changed


@pytest.mark.parametrize("where", ["data", "model"])
def test_the_sample_rate_comes_from_the_data_or_the_model(where):
    sections = {"model": {"name": "sepformer"}, "data": {"name": "synth_mix"}}
    sections[where]["sample_rate"] = 22050
    resolved = resolve_config(config(**sections))
    assert resolved.sample_rate == 22050
    assert resolved.model["sample_rate"] == resolved.data["sample_rate"] == 22050


def test_constructors_that_do_not_take_a_key_do_not_get_it():
    resolved = resolve_config(config("classification", sample_rate=8000,
                                     model={"name": "test_resolve_plain_net"},
                                     data={"name": "test_resolve_plain_data",
                                           "num_sources": 2}), ["a", "b", "c"])
    assert resolved.model == {"name": "test_resolve_plain_net", "num_classes": 3}
    assert resolved.data == {"name": "test_resolve_plain_data", "num_sources": 2}
    assert accepts(PlainNet, "width") and not accepts(PlainNet, "sample_rate")
    assert accepts(lambda **kwargs: None, "anything")


def test_an_explicit_number_of_sources_is_kept():
    resolved = resolve_config(config(sample_rate=8000,
                                     model={"name": "sepformer", "num_sources": 2}))
    assert resolved.model["num_sources"] == 2


def test_labels_and_the_number_of_classes_come_from_the_dataset():
    given = config("classification", sample_rate=16000, model={"name": "td_cnn"},
                   data={"name": "synth_events"})
    assert resolve_config(given).labels is None  # not known before the dataset is built
    resolved = resolve_config(given, ("dog", "siren"))
    assert resolved.labels == ["dog", "siren"]
    assert resolved.model == {"name": "td_cnn", "sample_rate": 16000, "num_classes": 2}
    with pytest.raises(ConfigError, match="model.num_classes: 3 but the dataset has 2 classes"):
        resolve_config(config("classification", sample_rate=16000,
                              model={"name": "td_cnn", "num_classes": 3},
                              data={"name": "synth_events"}), ["dog", "siren"])


@pytest.mark.parametrize("section, key", [
    ({"model": {"name": "sepformer", "sample_rate": 16000}}, "model.sample_rate"),
    ({"data": {"name": "synth_mix", "sample_rate": 16000}}, "data.sample_rate"),
    # a split's own rate would give that split audio at another rate than the model's
    ({"data": {"name": "synth_mix", "valid": {"sample_rate": 16000}}}, "data.valid.sample_rate"),
])
def test_a_second_different_sample_rate_is_refused(section, key):
    with pytest.raises(ConfigError, match=rf"^{key}: 16000 differs from sample_rate 8000"):
        resolve_config(config(sample_rate=8000, **section))


def test_a_split_without_a_rate_gets_the_model_rate():
    resolved = resolve_config(config(sample_rate=8000, data={"name": "synth_mix",
                                                             "test": {"sample_rate": None}}))
    assert resolved.data_kwargs("test")["sample_rate"] == 8000


def test_a_missing_sample_rate_is_one_error():
    with pytest.raises(ConfigError, match="sample_rate: missing"):
        resolve_config(config())
