"""Training configs: a YAML file plus ``key=value`` overrides, checked into typed sections.

A config has fixed sections with a schema (:class:`TrainerConfig`, :class:`OptimizerConfig`,
:class:`SchedulerConfig` and the top-level keys of :class:`Config`) and free-form sections
(``model``, ``data``, ``loss``) whose keys are the keyword arguments of the model/dataset
constructor (checked with :func:`audionets.registry.check_kwargs` when they are built).

``data`` may hold per-split override dicts ``train``, ``valid`` and ``test``, merged over the
common keys for that split only::

    data: {name: synth_mix, segment_seconds: 2.0, num_examples: 2000,
           valid: {num_examples: 200}, test: {num_examples: 200, segment_seconds: null}}

Overrides are dotted keys with YAML values: ``trainer.max_epochs=3``, ``data.root=/data``,
``model.num_sources=3``, ``optimizer.lr=1e-3``, ``experiment_dir=exp/run2``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from audionets._version import __version__
from audionets.errors import ConfigError, check_choice
from audionets.serialization.checkpoints import RULES
from audionets.serialization.yaml_files import check_version, parse_yaml
from audionets.tasks import TASKS
from audionets.utils import read_text

SPLITS = ("train", "valid", "test")
FREE_FORM = ("model", "data", "loss")


@dataclass
class TrainerConfig:
    """How to train: loop length, batching, device, precision, checkpoints."""

    max_epochs: int = 10
    max_steps: int | None = None  # stop after this many optimizer steps (also mid-epoch)
    min_steps: int | None = None  # at least this many steps: more epochs on a small data set
    batch_size: int = 4
    valid_batch_size: int | None = None  # default: batch_size
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16/fp16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    grad_clip: float | None = 5.0
    accumulate: int = 1
    num_workers: int = 0
    keep_best: int = 3
    monitor: str | None = None  # default: the task's main validation metric
    monitor_mode: str | None = None  # max | min; default from the monitored metric
    # which checkpoint is "the best" (tested, exported, loaded): best (validation value) |
    # one_se (the latest within one standard error of the best value; for small valid splits)
    checkpoint_rule: str = "best"
    limit_train_batches: int | None = None
    limit_valid_batches: int | None = None  # also limits the final test pass
    test: bool = True  # evaluate the best checkpoint on the test split at the end
    progress: bool = True  # tqdm bars (only on a TTY and on rank 0)


@dataclass
class OptimizerConfig:
    """The optimizer (a ``torch.optim`` class) and its hyperparameters.

    Keys an optimizer does not use are ignored, except ``nesterov`` (SGD only). ``null`` means
    the default of the optimizer named: ``momentum`` 0.9 for sgd and 0 for rmsprop, ``eps`` the
    PyTorch default (1e-8; 1e-10 for adagrad).
    """

    name: str = "adam"  # sgd | adagrad | rmsprop | adam | adamw
    lr: float = 1e-3
    weight_decay: float = 0.0  # L2 penalty added to the gradient; adamw: decoupled decay
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam, adamw
    momentum: float | None = None  # sgd, rmsprop
    nesterov: bool = False  # sgd: Nesterov's look-ahead momentum (needs momentum > 0)
    alpha: float = 0.99  # rmsprop: smoothing of the running mean of squared gradients
    eps: float | None = None  # adagrad, rmsprop, adam, adamw: added to the denominator


@dataclass
class SchedulerConfig:
    name: str = "none"  # plateau | cosine | none
    factor: float = 0.5  # plateau
    patience: int = 2  # plateau
    min_lr: float = 0.0  # plateau, cosine
    warmup_steps: int = 0  # cosine: linear warm-up over this many optimizer steps


_SECTIONS = {"trainer": TrainerConfig, "optimizer": OptimizerConfig, "scheduler": SchedulerConfig}
_CHOICES = {
    "task": TASKS,
    "trainer.precision": ("auto", "fp32", "bf16", "fp16"),
    "trainer.monitor_mode": ("max", "min"),
    "trainer.checkpoint_rule": RULES,
    "optimizer.name": ("sgd", "adagrad", "rmsprop", "adam", "adamw"),
    "scheduler.name": ("plateau", "cosine", "none"),
}
_POSITIVE = ("trainer.max_epochs", "trainer.max_steps", "trainer.min_steps",
             "trainer.batch_size", "trainer.valid_batch_size", "trainer.accumulate", "trainer.limit_train_batches",
             "trainer.limit_valid_batches", "sample_rate")
# grad_clip 0 and keep_best 0 switch clipping and best checkpoints off
_NON_NEGATIVE = ("trainer.grad_clip", "trainer.num_workers", "trainer.keep_best",
                 "scheduler.min_lr", "scheduler.patience", "scheduler.warmup_steps")


@dataclass
class Config:
    """A resolved training config; :meth:`to_dict` is what is saved with every checkpoint."""

    task: str
    model: dict[str, Any]
    data: dict[str, Any]
    experiment_dir: str = "exp/default"
    seed: int = 0
    sample_rate: int | None = None
    #: start from the weights of this model (a shipped model name, a model folder, an experiment,
    #: a checkpoint, a SpeechBrain folder or a hub id) instead of a random initialisation; its
    #: architecture must be the one ``model`` builds. Ignored by ``--resume``.
    init_from: str | None = None
    loss: dict[str, Any] = field(default_factory=dict)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    labels: list[str] | None = None  # class names (classification), filled in from the data
    audionets_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-able dict of the whole config (fixed sections included)."""
        return copy.deepcopy(dataclasses.asdict(self))

    def data_kwargs(self, split: str) -> dict[str, Any]:
        """Dataset kwargs for ``split`` (see :func:`split_data_kwargs`)."""
        return split_data_kwargs(self.data, split)


def split_data_kwargs(data: dict[str, Any], split: str) -> dict[str, Any]:
    """Dataset kwargs for ``split``: common keys of ``data`` with ``data[split]`` merged over.

    Returns a new dict without ``name`` and without the per-split sub-dicts.
    """
    common = {k: v for k, v in data.items() if k not in SPLITS and k != "name"}
    common.update(data.get(split) or {})
    return copy.deepcopy(common)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widened to float)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            try:
                return _coerce(value, inner[0], key)
            except ConfigError as err:
                if value is None or type(None) not in args or str(err).count(": expected") != 1:
                    raise
                raise ConfigError(str(err).replace(", got ", " or null, got ", 1)) from None
    elif origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, (list, tuple)):
            return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        raise ConfigError(f"{key}: expected a list, got {value!r}")
    elif origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise ConfigError(f"{key}: expected a mapping, got {value!r}")
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is bool or tp is str:
        if isinstance(value, tp):
            return value
    else:  # pragma: no cover - schema bug
        raise TypeError(f"unsupported annotation {tp!r} for {key}")
    expected = " or ".join(
        _type_name(a) for a in (typing.get_args(tp) or (tp,))
    ).replace("NoneType", "null")
    raise ConfigError(f"{key}: expected {expected}, got {value!r}")


def _build_dataclass(cls: type, values: Any, where: str) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{where}.{key}" if where else str(key)
        if key not in hints:
            raise ConfigError(
                f"unknown key {dotted}; {where or 'the top level'} accepts: {', '.join(valid)}"
            )
        if where == "" and key in _SECTIONS:
            kwargs[key] = _build_dataclass(_SECTIONS[key], value, key)
        else:
            kwargs[key] = _coerce(value, hints[key], dotted)
    try:
        return cls(**kwargs)
    except TypeError:
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name not in kwargs and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
        raise ConfigError(
            f"missing key {', '.join(missing)}; a config needs task, model, data"
        ) from None


def _check_range(key: str, value: float, low_open: bool, high: float | None) -> None:
    """Refuse ``value`` unless ``0 <= value < high`` (``0 <`` when ``low_open``; ``high`` None:
    any finite value). NaN never passes."""
    above_low = value > 0 if low_open else value >= 0
    below_high = math.isfinite(value) if high is None else value < high
    if not (above_low and below_high):
        if high is not None:
            wanted = f"in {'(' if low_open else '['}0, {high:g})"
        else:
            wanted = "a finite number " + ("> 0" if low_open else ">= 0")
        raise ConfigError(f"optimizer.{key}: must be {wanted}, got {value!r}")


def validate_optimizer(opt: OptimizerConfig) -> None:
    """Refuse optimizer values that would train to NaN weights or that torch.optim rejects.

    Every message is one line naming the dotted key (``optimizer.betas[1]: must be in [0, 1)``).
    """
    if opt.name not in _CHOICES["optimizer.name"]:
        raise ConfigError(f"optimizer.name: {opt.name!r} is not one of: "
                          f"{', '.join(_CHOICES['optimizer.name'])}")
    _check_range("lr", opt.lr, low_open=True, high=None)
    _check_range("weight_decay", opt.weight_decay, low_open=False, high=None)
    if opt.eps is not None:
        _check_range("eps", opt.eps, low_open=True, high=None)
    if opt.momentum is not None:
        _check_range("momentum", opt.momentum, low_open=False, high=1)
    _check_range("alpha", opt.alpha, low_open=False, high=1)
    if len(opt.betas) != 2:
        raise ConfigError(
            f"optimizer.betas: expected two numbers [beta1, beta2], got {opt.betas!r}")
    for i, beta in enumerate(opt.betas):
        _check_range(f"betas[{i}]", beta, low_open=False, high=1)
    if opt.nesterov and opt.name != "sgd":
        raise ConfigError(f"optimizer.nesterov: only sgd has Nesterov momentum, not {opt.name}; "
                          "set optimizer.name=sgd or optimizer.nesterov=false")
    if opt.nesterov and opt.momentum == 0:
        raise ConfigError("optimizer.nesterov: needs optimizer.momentum > 0, got 0")


def optimizer_config(values: dict[str, Any] | None) -> OptimizerConfig:
    """The validated :class:`OptimizerConfig` of a config's ``optimizer`` section (a mapping)."""
    opt = _build_dataclass(OptimizerConfig, values, "optimizer")
    validate_optimizer(opt)
    return opt


#: seeds are 64-bit generator states; the loaders add small offsets to them
MAX_SEED = 2**63 - 1


def _check_finite(value: Any, key: str) -> None:
    """ConfigError naming ``key`` (dotted, with list indices) for a NaN or infinite number
    anywhere in ``value``: no setting of a model, a dataset or the trainer means one."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    if isinstance(value, dict):
        for name, item in value.items():
            _check_finite(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_finite(item, f"{key}[{index}]")


def _validate(config: Config) -> None:
    from audionets.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

    validate_optimizer(config.optimizer)  # first: its own messages for the optimizer's values
    _check_finite(config.to_dict(), "")
    rate = config.sample_rate
    if rate is not None and not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ConfigError(f"sample_rate: must be from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz, "
                          f"got {config.sample_rate}")
    if not 0 <= config.seed <= MAX_SEED:
        raise ConfigError(f"seed: must be from 0 to 2**63 - 1, got {config.seed}")
    flat = {"task": config.task, "sample_rate": config.sample_rate}
    for section in _SECTIONS:
        for key, value in dataclasses.asdict(getattr(config, section)).items():
            flat[f"{section}.{key}"] = value
    for key, choices in _CHOICES.items():
        if flat[key] is not None:
            check_choice(key, flat[key], choices)
    for key in _POSITIVE:
        if flat[key] is not None and flat[key] <= 0:
            raise ConfigError(f"{key}: must be a positive integer, got {flat[key]!r}")
    for key in _NON_NEGATIVE:
        if flat[key] is not None and flat[key] < 0:
            raise ConfigError(f"{key}: must be >= 0, got {flat[key]!r}")
    if not 0 < config.scheduler.factor < 1:
        raise ConfigError(f"scheduler.factor: must be in (0, 1), got {config.scheduler.factor!r}")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", config.trainer.device):
        raise ConfigError(
            f"trainer.device: {config.trainer.device!r} is not one of: auto, cpu, cuda, cuda:N"
        )
    for section in FREE_FORM:
        if not isinstance(getattr(config, section), dict):
            raise ConfigError(f"{section}: expected a mapping, got {getattr(config, section)!r}")
    for section in ("model", "data"):
        if not isinstance(getattr(config, section).get("name"), str):
            raise ConfigError(f"{section}.name: missing; name the {section} to build "
                              f"(e.g. {section}.name=...)")
    for split in SPLITS:
        sub = config.data.get(split)
        if sub is not None and not isinstance(sub, dict):
            raise ConfigError(
                f"data.{split}: expected a mapping of per-split data keys, got {sub!r}"
            )
    check_version(config.audionets_version, "audionets_version")


def check_data_roots(data: dict[str, Any]) -> None:
    """Raise ConfigError naming ``data.root`` (or ``data.<split>.root``) when it does not exist."""
    candidates = [("data.root", data.get("root"))]
    candidates += [(f"data.{s}.root", (data.get(s) or {}).get("root")) for s in SPLITS]
    for key, root in candidates:
        if root is not None and not Path(str(root)).expanduser().is_dir():
            raise ConfigError(
                f"{key}: folder {root} does not exist; set {key}=/path/to/the/dataset"
            )


def apply_override(tree: dict[str, Any], override: str) -> None:
    """Apply one ``a.b.c=value`` override (value parsed as YAML) to the nested dict ``tree``."""
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {override!r}: expected key=value, e.g. trainer.max_epochs=3")
    value = parse_yaml(text, where=f"override {key}") if text.strip() else None
    parts = key.split(".")
    node = tree
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(
                f"override {key}: {'.'.join(parts[:depth + 1])} is not a mapping"
            )
        node = child
    node[parts[-1]] = value


def config_from_dict(raw: Any, overrides: list[str] | tuple[str, ...] = (),
                     where: str = "config") -> Config:
    """Build and validate a :class:`Config` from a plain dict plus dotted overrides."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        tree = copy.deepcopy(raw)
        for override in overrides:
            apply_override(tree, override)
        config = _build_dataclass(Config, tree, "")
        _validate(config)
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply to be a config") from None
    # "~/runs/x" in a YAML file is not expanded by any shell: without this the run would go
    # to a folder named "~" under the working directory
    config.experiment_dir = os.path.expanduser(config.experiment_dir)
    return config


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = (),
                check_paths: bool = True) -> Config:
    """Read a YAML config, apply ``key=value`` overrides and validate it.

    Raises ConfigError for an unreadable file, unknown keys, wrong types, bad choices and
    (with ``check_paths``) a ``data.root`` that does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass the path of a recipe config.yaml")
    text = read_text(path, ConfigError, "pass the path of a recipe config.yaml")
    raw = parse_yaml(text, where=str(path))
    config = config_from_dict(raw, overrides, where=str(path))
    if check_paths:
        check_data_roots(config.data)
    return config


def resumed_config(config: Config, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The config to ``--resume`` the run in ``config.experiment_dir`` with: the one it was
    started with (its saved ``config.yaml``) plus ``overrides`` (e.g. ``trainer.max_epochs=60``
    to extend it), whatever the recipe file says now. ``config`` itself when nothing is saved
    there (the trainer then reports that there is nothing to resume)."""
    saved = Path(config.experiment_dir) / "config.yaml"
    return load_config(saved, overrides) if saved.is_file() else config


def save_config(config: Config | dict[str, Any], path: str | Path) -> None:
    """Write a config as YAML atomically."""
    from audionets.utils import atomic_write

    data = config.to_dict() if isinstance(config, Config) else config
    with atomic_write(path) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
