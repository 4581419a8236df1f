"""What a config implies: the keys of the model and data sections that follow from the rest.

:func:`resolve_config` is the one place where a config is completed before anything is built,
for training (``Trainer``) and for evaluation (``audionets evaluate``). It is pure: it reads the
constructors' signatures from the registries (which must be loaded) and returns a new config,
without reading files or building anything.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from audionets.errors import ConfigError
from audionets.registry import DATASETS, MODELS
from audionets.training.config import SPLITS, Config


def accepts(ctor: Callable[..., Any], key: str) -> bool:
    """Whether ``ctor`` takes the keyword argument ``key`` (by name or through ``**kwargs``)."""
    params = inspect.signature(ctor).parameters
    return key in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def resolve_config(config: Config, data_labels: Sequence[str] | None = None) -> Config:
    """``config`` with the keys the rest of it implies filled in (``config`` is not changed).

    - ``sample_rate``: the top-level one, else ``data.sample_rate``, else
      ``model.sample_rate`` (ConfigError when none is set). It is passed to the model and to
      the dataset (every split) when their constructors take it; an explicit different
      ``model.sample_rate``, ``data.sample_rate`` or ``data.<split>.sample_rate`` is a
      ConfigError: the model hears the data at one rate.
    - ``model.num_sources``: the data's ``num_sources`` (or ``num_speakers``) when the model
      takes it and the config does not set it.
    - with ``data_labels``, the class names of the built dataset (its ``.labels``; known only
      once it is built): ``labels`` becomes them and ``model.num_classes`` their number when
      the model takes it; an explicit different ``model.num_classes`` is a ConfigError.
    """
    resolved = dataclasses.replace(config, model=copy.deepcopy(config.model),
                                   data=copy.deepcopy(config.data))
    model_ctor = MODELS.get(resolved.model["name"])
    data_ctor = DATASETS.get(resolved.data["name"])
    rate = (resolved.sample_rate or resolved.data.get("sample_rate")
            or resolved.model.get("sample_rate"))
    if rate is None:
        raise ConfigError("sample_rate: missing; set sample_rate=8000 (or the rate of your data)")
    resolved.sample_rate = int(rate)
    sections = [("model", resolved.model, model_ctor), ("data", resolved.data, data_ctor)]
    sections += [(f"data.{split}", resolved.data[split], data_ctor) for split in SPLITS
                 if isinstance(resolved.data.get(split), dict)
                 and "sample_rate" in resolved.data[split]]
    for key, values, ctor in sections:
        if values.get("sample_rate") not in (None, resolved.sample_rate):
            raise ConfigError(f"{key}.sample_rate: {values['sample_rate']} differs from "
                              f"sample_rate {resolved.sample_rate}, the rate the model runs at; "
                              f"drop {key}.sample_rate (the data comes at the model's rate)")
        if accepts(ctor, "sample_rate"):
            values["sample_rate"] = resolved.sample_rate
    sources = resolved.data.get("num_sources", resolved.data.get("num_speakers"))
    if (sources is not None and "num_sources" not in resolved.model
            and accepts(model_ctor, "num_sources")):
        resolved.model["num_sources"] = sources
    if data_labels is not None:
        resolved.labels = [str(label) for label in data_labels]
        given = resolved.model.get("num_classes")
        if given is None and accepts(model_ctor, "num_classes"):
            resolved.model["num_classes"] = len(resolved.labels)
        elif given is not None and given != len(resolved.labels):
            raise ConfigError(f"model.num_classes: {given} but the dataset has "
                              f"{len(resolved.labels)} classes; drop model.num_classes to take "
                              "it from the data")
    return resolved
