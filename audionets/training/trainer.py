"""The training loop: one :class:`Trainer` for every task, on CPU, one GPU or many (torchrun).

``Trainer(config).fit()`` builds the datasets, model, optimizer and scheduler from a
:class:`~audionets.training.config.Config`, trains with optional AMP, gradient accumulation
and clipping, validates every epoch, logs ``metrics.csv``/``curves.png``, keeps ``last.pt``
and the best ``keep_best`` checkpoints, and finally evaluates the best checkpoint on the test
split (``test_metrics.json``). ``Trainer(config, resume=True)`` continues exactly from
``experiment_dir/checkpoints/last.pt`` (also from the middle of an epoch). SIGINT/SIGTERM
stop at the next optimizer step with a checkpoint.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from audionets._version import __version__
from audionets.errors import CheckpointError, ConfigError, OutputError, TrainingError
from audionets.hub import load_model
from audionets.registry import DATASETS, MODELS
from audionets.training import distributed
from audionets.serialization.checkpoints import (
    LAST,
    BestCheckpoints,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from audionets.serialization.weights import load_weights
from audionets.training.config import SPLITS, Config, OptimizerConfig, TrainerConfig, save_config
from audionets.training.metrics_log import MetricsLogger
from audionets.training.tasks import Task, build_task, check_items
from audionets.utils import atomic_write, check_out_dir, folder_lock, resolve_device

log = logging.getLogger("audionets.train")

#: redraw curves.png after an epoch when this many seconds passed since the last drawing
#: (it is always drawn when training ends)
PLOT_INTERVAL_S = 60.0
COUNT = "_count"
#: without a terminal for a progress bar, log a progress line at most this often
LOG_INTERVAL_S = 60.0
#: training stops (TrainingError) after this many consecutive batches with a NaN/Inf loss
MAX_NON_FINITE_LOSSES = 5


def load_registries() -> None:
    """Import the packages whose import registers the models and datasets."""
    import audionets.data  # noqa: F401
    import audionets.models  # noqa: F401


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def _rng_kept() -> Iterator[None]:
    """Put the global torch (CPU), NumPy and ``random`` states back after the block."""
    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


class _SeededItems(Dataset):
    """``dataset`` read at ``(position, index)`` keys; the torch, NumPy and ``random`` draws of
    each item are seeded from ``(*base, position)`` alone. Which DataLoader worker reads an
    item, and how many batches a resumed epoch skipped, then no longer change it. In the main
    process (``num_workers=0``) the model's RNG stream is put back after each item."""

    def __init__(self, dataset: Dataset, base: tuple[int, ...]) -> None:
        self.dataset, self.base = dataset, base

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        position, index = key
        words = [value % 2**32 for value in (*self.base, position)]
        seed = int(np.random.SeedSequence(words).generate_state(1)[0])
        in_worker = torch.utils.data.get_worker_info() is not None  # nothing else draws there
        with contextlib.nullcontext() if in_worker else _rng_kept():
            torch.default_generator.manual_seed(seed)  # CPU only: CUDA's stream is the model's
            np.random.seed(seed)
            random.seed(seed)
            return self.dataset[index]


def _init_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: leave Ctrl-C / SIGTERM to the main process, which saves a
    checkpoint and stops the workers (``pkill`` and terminals signal the whole group). (Items
    seed their own random draws: :class:`_SeededItems`.)

    The worker starts with both signals blocked (see :func:`_iterate`); one that arrived since is
    discarded when it is ignored here, before they are unblocked."""
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def _iterate(loader: DataLoader) -> Iterator:
    """``iter(loader)`` with Ctrl-C / SIGTERM held back while its worker processes start.

    A worker inherits the blocked mask, so a signal sent to the whole process group cannot kill it
    before :func:`_init_worker` ignores it; the main process gets the signal as soon as the
    workers have started, and saves a checkpoint.
    """
    if not loader.num_workers or not hasattr(signal, "pthread_sigmask"):
        return iter(loader)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        return iter(loader)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` -> bf16 (or fp16 on GPUs without bf16) on CUDA, fp32 on CPU."""
    if name != "auto":
        return name
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _accepts(ctor: Any, key: str) -> bool:
    params = inspect.signature(ctor).parameters
    return key in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def resolve_components(config: Config) -> None:
    """Fill in model/data keys implied by the rest of the config, in place.

    ``sample_rate`` (top level, else ``data.sample_rate``, else ``model.sample_rate``) is
    passed to the model and the dataset when their constructors take it; ``num_sources`` (or
    ``num_speakers``) of the data goes to a model that takes ``num_sources``. Conflicting
    explicit values raise ConfigError.
    """
    load_registries()
    model_ctor = MODELS.get(config.model["name"])
    data_ctor = DATASETS.get(config.data["name"])
    rate = config.sample_rate or config.data.get("sample_rate") or config.model.get("sample_rate")
    if rate is None:
        raise ConfigError("sample_rate: missing; set sample_rate=8000 (or the rate of your data)")
    config.sample_rate = int(rate)
    for section, ctor in (("model", model_ctor), ("data", data_ctor)):
        values = getattr(config, section)
        if values.get("sample_rate") not in (None, config.sample_rate):
            raise ConfigError(f"{section}.sample_rate: {values['sample_rate']} differs from "
                              f"sample_rate {config.sample_rate}; set only the top-level "
                              "sample_rate")
        if _accepts(ctor, "sample_rate"):
            values["sample_rate"] = config.sample_rate
    sources = config.data.get("num_sources", config.data.get("num_speakers"))
    if (sources is not None and "num_sources" not in config.model
            and _accepts(model_ctor, "num_sources")):
        config.model["num_sources"] = sources


def build_dataset(config: Config, split: str) -> Dataset:
    """``DATASETS.build(data.name, split=split, **data_kwargs(split))``."""
    load_registries()
    return DATASETS.build(config.data["name"], _where="data", split=split,
                          **config.data_kwargs(split))


def build_model(config: Config) -> nn.Module:
    """The model of ``config.model`` (``{"name": ..., **kwargs}``)."""
    from audionets import models

    load_registries()
    return models.build_model(config.model)


def init_weights(model: nn.Module, config: Config) -> None:
    """Copy the weights of ``config.init_from`` (any source :func:`audionets.hub.load_model`
    reads) into ``model``; CheckpointError naming the first weight that does not fit."""
    try:
        source, meta = load_model(config.init_from)
    except CheckpointError as err:  # say which config key named the unusable source
        raise CheckpointError(f"init_from: {err}") from None
    where = f"init_from={config.init_from}"
    if meta.task != config.task:
        raise ConfigError(f"{where}: a {meta.task} model cannot initialise a {config.task} run; "
                          "point init_from at a model of the same task")
    load_weights(model, source.state_dict(), where)
    differing = _differing_arguments(meta.config["model"], config.model)
    if differing:  # same weight shapes, different computation (e.g. norm_before): allowed
        log.warning("%s: the source model differs from this config in %s", where,
                    ", ".join(differing))
    log.info("initialised the model from %s", meta.source)


def _differing_arguments(source: dict[str, Any], target: dict[str, Any]) -> list[str]:
    """``model.KEY=source value`` for each constructor argument the two model configs set
    differently (defaults filled in from the constructor's signature)."""
    if source.get("name") != target.get("name"):
        return [f"model.name={source.get('name')}"]
    params = inspect.signature(MODELS.get(target["name"])).parameters
    defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    keys = sorted((set(source) | set(target)) - {"name"})
    return [f"model.{k}={source.get(k, defaults.get(k))!r}" for k in keys
            if source.get(k, defaults.get(k)) != target.get(k, defaults.get(k))]


def resolve_monitor(config: Config, task: Task) -> tuple[str, str]:
    """The monitored validation metric and its mode (``max``/``min``), checked against the task."""
    monitor = config.trainer.monitor or task.default_monitor
    valid = [f"valid_{m}" for m in task.all_metric_names()]
    if monitor not in valid:
        raise ConfigError(f"trainer.monitor: {monitor!r} is not a metric of the {task.name} task; "
                          f"choose one of: {', '.join(valid)}")
    mode = config.trainer.monitor_mode or ("max" if task.higher_is_better(monitor) else "min")
    return monitor, mode


def build_optimizer(opt: OptimizerConfig, params: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimizer ``opt.name`` names over ``params``, with its hyperparameters.

    ``opt`` is validated by the config (:func:`audionets.training.config.validate_optimizer`).
    """
    common: dict[str, Any] = {"lr": opt.lr, "weight_decay": opt.weight_decay}
    if opt.name == "sgd":
        momentum = 0.9 if opt.momentum is None else opt.momentum
        return torch.optim.SGD(params, momentum=momentum, nesterov=opt.nesterov, **common)
    if opt.eps is not None:
        common["eps"] = opt.eps
    if opt.name == "adagrad":
        return torch.optim.Adagrad(params, **common)
    if opt.name == "rmsprop":
        return torch.optim.RMSprop(params, alpha=opt.alpha, momentum=opt.momentum or 0.0,
                                   **common)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[opt.name]
    return cls(params, betas=tuple(opt.betas), **common)


def epochs_to_train(trainer: TrainerConfig, steps_per_epoch: int) -> int:
    """``trainer.max_epochs``, raised when needed to make at least ``trainer.min_steps``
    optimizer steps (``steps_per_epoch`` of them per epoch).

    Epochs measure how often the model sees each clip, which suits a large data set; the
    optimiser, though, needs a number of updates that does not shrink with the data: 30
    epochs of a 200-clip set at batch 128 are 60 steps, too few to leave the warm-up.
    """
    if trainer.min_steps is None:
        return trainer.max_epochs
    return max(trainer.max_epochs, math.ceil(trainer.min_steps / max(1, steps_per_epoch)))


def _cosine_factor(step: int, warmup: int, total: int, floor: float) -> float:
    """LR multiplier: linear warm-up to 1 over ``warmup`` steps, then cosine down to ``floor``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(config: Config, optimizer: torch.optim.Optimizer, mode: str,
                    total_steps: int) -> Any:
    """``plateau`` (stepped per epoch on the monitored metric), ``cosine`` (per step) or None."""
    sched = config.scheduler
    if sched.name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=sched.factor, patience=sched.patience, min_lr=sched.min_lr
        )
    if sched.name == "cosine":
        floor = sched.min_lr / config.optimizer.lr if config.optimizer.lr > 0 else 0.0
        warmup, total = sched.warmup_steps, max(1, total_steps)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: _cosine_factor(step, warmup, total, floor)
        )
    return None


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}


class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag the loops check (a second Ctrl-C aborts at once)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> "_StopRequest":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` did. ``status``: completed | max_steps | interrupted."""

    status: str
    epoch: int
    step: int
    experiment_dir: Path
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    test_metrics: dict[str, float] = field(default_factory=dict)
    signum: int | None = None
    last_epoch: int = 0  # 1-based epoch the run last trained in (``epoch`` counts finished ones)
    max_epochs: int = 0


class Trainer:
    """Trains ``config`` (see module docstring); ``resume`` continues from ``last.pt``."""

    def __init__(self, config: Config, resume: bool = False) -> None:
        self.config = config
        self.resume = resume
        self.dist = distributed.env_info()
        self.device = resolve_device(config.trainer.device, self.dist.local_rank,
                                     key="trainer.device")
        distributed.init_from_env(self.device)
        self.precision = resolve_precision(config.trainer.precision, self.device)
        self.task = build_task(config.task, config.loss)
        self.monitor, self.monitor_mode = resolve_monitor(config, self.task)
        self.exp_dir = Path(config.experiment_dir)
        self.ckpt_dir = self.exp_dir / "checkpoints"
        self._check_experiment_dir()

        seed_everything(config.seed)
        resolve_components(config)
        # the test split too, so that a gap in its files fails now, not after the training
        splits = SPLITS if config.trainer.test else SPLITS[:2]
        self.datasets = {split: build_dataset(config, split) for split in splits}
        with _rng_kept():  # reading an item must not move the seed of the weights
            check_items(config.task, self.datasets["train"], f"data.name={config.data['name']}")
        self._resolve_labels()
        self.model = build_model(config).to(self.device)
        if config.init_from is not None and not resume:
            init_weights(self.model, config)
        self.train_model: nn.Module = self.model
        if self.dist.enabled:
            self.train_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        # every process starts from the same weights (DDP broadcasts rank 0's) but draws its
        # own dropout masks and crops; rank 0 matches a single-process run
        seed_everything(config.seed + self.dist.rank)
        self.optimizer = build_optimizer(config.optimizer, self.model.parameters())
        steps_per_epoch = math.ceil(self._num_batches("train") / config.trainer.accumulate)
        self.max_epochs = epochs_to_train(config.trainer, steps_per_epoch)
        total = self.max_epochs * steps_per_epoch
        # optimizer steps the run will make: the cosine schedule ends there
        if config.trainer.max_steps is not None:
            total = min(total, config.trainer.max_steps)
        self.scheduler = build_scheduler(config, self.optimizer, self.monitor_mode, total)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.epoch = 0  # completed epochs
        self.batch_in_epoch = 0  # batches of the current epoch already trained
        self.step = 0  # optimizer steps
        self.partial_sums: dict[str, float] = {}  # train metric sums of an unfinished epoch
        self._bad_losses = 0  # consecutive batches with a non-finite loss
        self.validated = True  # the current position's metrics row and checkpoints are written
        self.best = BestCheckpoints(self.ckpt_dir, config.trainer.keep_best, self.monitor_mode)
        if resume:
            self._load_last()
        self.metrics_logger: MetricsLogger | None = None
        self._last_plot = time.monotonic()

    # ----------------------------------------------------------------- set-up helpers
    def _check_experiment_dir(self) -> None:
        check_out_dir(self.exp_dir)
        last = self.ckpt_dir / LAST
        if self.resume and not last.is_file():
            raise CheckpointError(f"{last}: no checkpoint to resume from; run without --resume "
                                  "to start, or point experiment_dir= at the run to continue")
        if not self.resume and last.is_file():
            raise OutputError(f"{self.exp_dir}: already holds a trained run; pass --resume to "
                              "continue it or set experiment_dir= to a new folder")

    def _resolve_labels(self) -> None:
        if self.config.task != "classification":
            return
        labels = getattr(self.datasets["train"], "labels", None)
        if labels is None:
            raise ConfigError(f"data.name: dataset {self.config.data['name']!r} has no .labels; "
                              "a classification dataset must list its class names")
        self.config.labels = [str(label) for label in labels]
        model_ctor = MODELS.get(self.config.model["name"])
        given = self.config.model.get("num_classes")
        if given is None and _accepts(model_ctor, "num_classes"):
            self.config.model["num_classes"] = len(labels)
        elif given is not None and given != len(labels):
            raise ConfigError(f"model.num_classes: {given} but the dataset has {len(labels)} "
                              "classes; drop model.num_classes to take it from the data")

    def _batch_size(self, split: str) -> int:
        trainer = self.config.trainer
        if split != "train" and self.config.data_kwargs(split).get("segment_seconds", 0) is None:
            return 1  # full-length items of different lengths cannot be stacked
        if split == "train":
            return trainer.batch_size
        return trainer.valid_batch_size or trainer.batch_size

    def _limit(self, split: str) -> int | None:
        trainer = self.config.trainer
        return trainer.limit_train_batches if split == "train" else trainer.limit_valid_batches

    def _indices(self, split: str, epoch: int) -> list[int]:
        dataset = self.datasets[split]
        sampler = DistributedSampler(
            dataset, num_replicas=self.dist.world_size, rank=self.dist.rank,
            shuffle=split == "train", seed=self.config.seed, drop_last=False,
        )
        sampler.set_epoch(epoch)
        indices = list(sampler)
        limit = self._limit(split)
        if limit is not None:
            indices = indices[: limit * self._batch_size(split)]
        return indices

    def _num_batches(self, split: str) -> int:
        return math.ceil(len(self._indices(split, 0)) / self._batch_size(split))

    def _loader(self, split: str, epoch: int, skip_batches: int = 0) -> DataLoader:
        """Batches of ``split`` in a fixed (seed, epoch) order, minus the first ``skip_batches``.

        Each item's random draws (crops, dynamic mixing, augmentation) are seeded from its
        position in the epoch (:class:`_SeededItems`), so a resumed epoch gets the same items
        as an uninterrupted one, whichever worker reads them."""
        batch_size = self._batch_size(split)
        first = skip_batches * batch_size
        indices = self._indices(split, epoch)[first:]
        dataset = self.datasets[split]
        if split == "train" and hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)  # datasets that draw fresh examples per epoch
        keys = list(enumerate(indices, start=first))
        # the workers' base seed comes from here: creating them draws nothing from the global
        # RNG (the model's stream), so a resumed run's dropout masks stay those of the original
        generator = torch.Generator()
        generator.manual_seed(self.config.seed * 1_000_003 + epoch * 1009 + self.dist.rank)
        workers = self.config.trainer.num_workers
        return DataLoader(
            _SeededItems(dataset, (self.config.seed, SPLITS.index(split), epoch, self.dist.rank)),
            batch_size=batch_size, sampler=keys, num_workers=workers,
            worker_init_fn=_init_worker if workers else None, generator=generator,
            pin_memory=self.device.type == "cuda", drop_last=False,
        )

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    # ----------------------------------------------------------------- checkpoints
    def _diverged(self, what: str) -> None:
        """Stop the run: TrainingError naming the step, what became non-finite and the last
        checkpoint, which keeps the weights from before (nothing non-finite is saved)."""
        last = self.ckpt_dir / LAST
        kept = f"; {last} holds the last finite weights" if last.is_file() else ""
        raise TrainingError(
            f"{self.exp_dir}: training diverged at step {self.step + 1} (epoch "
            f"{self.epoch + 1}): {what}; lower optimizer.lr, set trainer.grad_clip or check the "
            f"data{kept}"
        )

    def _state(self) -> dict[str, Any]:
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            self._diverged("the weights hold NaN or Inf values")
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "train_partial": self.partial_sums,
            "validated": self.validated,
            "rng": capture_rng(),
            "config": self.config.to_dict(),
            "labels": self.config.labels,
            "best": self.best.entries,
            "monitor": {"name": self.monitor, "mode": self.monitor_mode},
            "audionets_version": __version__,
        }

    def _save_last(self) -> Path:
        path = self.ckpt_dir / LAST
        if self.dist.is_main:
            save_checkpoint(self._state(), path)
        return path

    def _load_last(self) -> None:
        path = self.ckpt_dir / LAST
        state = load_checkpoint(path, map_location=self.device)
        try:
            load_weights(self.model, state["model"], str(path))  # names the first misfit
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state.get("scheduler") is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.epoch, self.step = int(state["epoch"]), int(state["step"])
            self.batch_in_epoch = int(state.get("batch_in_epoch", 0))
            self.partial_sums = {k: float(v) for k, v in (state.get("train_partial") or {}).items()}
            self.validated = bool(state.get("validated", True))
        except (KeyError, RuntimeError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            raise CheckpointError(f"{path}: does not fit this config ({first[:200]}); resume with "
                                  "the config the run was started with") from None
        self.best = BestCheckpoints(self.ckpt_dir, self.config.trainer.keep_best,
                                    self.monitor_mode, state.get("best"))
        restore_rng(state["rng"])
        log.info("resuming %s after epoch %d%s, step %d", path, self.epoch,
                 f" + {self.batch_in_epoch} batches" if self.batch_in_epoch else "", self.step)
        if self.dist.enabled and not self.dist.is_main:
            seed_everything(self.config.seed + self.dist.rank + self.step)

    # ----------------------------------------------------------------- loops
    def _train_epoch(self, stop: _StopRequest) -> tuple[dict[str, float], str | None, bool]:
        """Train the rest of epoch ``self.epoch``.

        Returns the mean train metrics, why it stopped early (None, ``max_steps`` or
        ``interrupted``) and whether the epoch is complete.
        """
        trainer = self.config.trainer
        loader = self._loader("train", self.epoch, self.batch_in_epoch)
        total = len(loader)
        # a resumed epoch continues the sums of its first part (saved all-reduced, by rank 0)
        partial = self.partial_sums if self.batch_in_epoch and self.dist.is_main else {}
        sums = {k: torch.tensor(v, dtype=torch.float64, device=self.device)
                for k, v in partial.items() if k != COUNT}
        count = torch.tensor(partial.get(COUNT, 0.0), dtype=torch.float64, device=self.device)
        self.train_model.train()
        reason, index = None, -1
        items, start, last_log = 0, time.perf_counter(), time.monotonic()
        bar = _progress(total, f"epoch {self.epoch + 1}/{self.max_epochs}",
                        trainer.progress and self.dist.is_main)
        self.optimizer.zero_grad(set_to_none=True)
        for index, batch in enumerate(_iterate(loader)):
            batch = _to_device(batch, self.device)
            done_in_epoch = self.batch_in_epoch + index + 1
            update = done_in_epoch % trainer.accumulate == 0 or index == total - 1
            sync = contextlib.nullcontext()
            if self.dist.enabled and not update:
                sync = self.train_model.no_sync()  # type: ignore[operator]
            with sync:
                with self._autocast():
                    loss, metrics = self.task.step(self.train_model, batch)
                # one bad batch skips its update (below); a loss that stays NaN/Inf means the
                # weights are gone: stop instead of training on to NaN weights
                self._bad_losses = 0 if torch.isfinite(loss) else self._bad_losses + 1
                if self._bad_losses >= MAX_NON_FINITE_LOSSES:
                    self._diverged(f"the loss was {loss.item()} for {self._bad_losses} batches "
                                   "in a row")
                self.scaler.scale(loss / trainer.accumulate).backward()
            _accumulate(sums, metrics)
            count += next(iter(metrics.values())).numel()
            items += Task.batch_size(batch)
            if update:
                self._optimizer_step()
                self.validated = False
            rate = items / max(time.perf_counter() - start, 1e-9)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4g}", items_s=f"{rate:.1f}")
            elif self.dist.is_main and time.monotonic() - last_log > LOG_INTERVAL_S:
                last_log = time.monotonic()  # no terminal (a batch job): a line now and then
                log.info("epoch %d: batch %d/%d, step %d, loss %.4g, %.1f items/s",
                         self.epoch + 1, self.batch_in_epoch + index + 1,
                         self.batch_in_epoch + total, self.step, loss.item(), rate)
            if update:
                if trainer.max_steps is not None and self.step >= trainer.max_steps:
                    reason = "max_steps"
                if distributed.any_process(stop.signum is not None, self.device):
                    reason = "interrupted"
                if reason is not None:
                    break
        if bar is not None:
            bar.close()
        finished = reason is None or index == total - 1
        if not finished:
            self.batch_in_epoch += index + 1
        totals = _totals(sums, count, self.task.all_metric_names(), self.dist.enabled)
        self.partial_sums = totals  # kept until the epoch is validated and saved
        return _means(totals, "train_"), reason, finished

    def _optimizer_step(self) -> None:
        clip = self.config.trainer.grad_clip
        self.scaler.unscale_(self.optimizer)
        norm = nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip else math.inf)
        if self.scaler.is_enabled():
            self.scaler.step(self.optimizer)  # skips the step itself on inf/NaN gradients
            self.scaler.update()
        elif torch.isfinite(norm):
            self.optimizer.step()
        else:
            log.warning("step %d: non-finite gradient norm, skipping this update", self.step + 1)
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        if isinstance(self.scheduler, torch.optim.lr_scheduler.LambdaLR):
            self.scheduler.step()

    @torch.no_grad()
    def evaluate_split(self, split: str, model: nn.Module | None = None,
                       stop: _StopRequest | None = None) -> dict[str, float] | None:
        """Mean task metrics over ``split`` (``valid_*``/``test_*`` keys), all-reduced under DDP.

        Returns None when ``stop`` was signalled before the end.
        """
        model = model or self.train_model
        model.eval()
        sums: dict[str, torch.Tensor] = {}
        count = torch.zeros((), dtype=torch.float64, device=self.device)
        loader = self._loader(split, 0)
        bar = _progress(len(loader), split, self.config.trainer.progress and self.dist.is_main)
        done = 0
        for batch in _iterate(loader):
            batch = _to_device(batch, self.device)
            with self._autocast():
                _, metrics = self.task.step(model, batch)
            size = next(iter(metrics.values())).numel()
            weights = self._real_items(split, done, size)
            done += size
            _accumulate(sums, metrics, weights)
            count += weights.sum()
            if bar is not None:
                bar.update(1)
            if stop is not None and distributed.any_process(stop.signum is not None, self.device):
                if bar is not None:
                    bar.close()
                return None
        if bar is not None:
            bar.close()
        names = self.task.all_metric_names()
        return _means(_totals(sums, count, names, self.dist.enabled), f"{split}_")

    def _real_items(self, split: str, start: int, size: int) -> torch.Tensor:
        """``[size]`` weights of this process's items ``start...``: 1 for dataset items, 0 for
        the repeats :class:`DistributedSampler` pads the last round with, so that every item
        of an evaluated split counts exactly once over all processes."""
        positions = torch.arange(start, start + size, dtype=torch.float64, device=self.device)
        real = self.dist.rank + positions * self.dist.world_size < len(self.datasets[split])
        return real.double()

    def fit(self) -> FitResult:
        """Train to ``max_epochs``/``max_steps`` (or a stop signal) and test; see the module doc.

        The experiment folder is locked meanwhile (:func:`audionets.utils.folder_lock`): a
        second run into it is refused, naming the process that holds it.
        """
        if not self.dist.is_main:
            return self._fit()
        with folder_lock(self.exp_dir):
            self._check_experiment_dir()  # again: another run may have finished meanwhile
            return self._fit()

    def _fit(self) -> FitResult:
        config, trainer = self.config, self.config.trainer
        if self.dist.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.ckpt_dir.glob(".*.pt.tmp"):  # left by a killed atomic write
                stale.unlink(missing_ok=True)
            save_config(config, self.exp_dir / "config.yaml")
            self.metrics_logger = MetricsLogger(
                self.exp_dir, resume_epoch=self.epoch if self.resume else None
            )
        log.info("training %s on %s (%s, %d process%s): %d train / %d valid items -> %s",
                 config.model["name"], self.device, self.precision, self.dist.world_size,
                 "es" if self.dist.world_size > 1 else "", len(self.datasets["train"]),
                 len(self.datasets["valid"]), self.exp_dir)
        status = "completed"
        stop = _StopRequest()
        with stop:
            if trainer.max_steps is not None and self.step >= trainer.max_steps:
                status = "max_steps"
                if not self.validated:  # stopped by a signal at its last step: validate it now
                    stopped = self._validate_last_position(stop)
                    if stopped is not None:
                        return stopped
            while status == "completed" and self.epoch < self.max_epochs:
                started = time.perf_counter()
                train_metrics, reason, finished = self._train_epoch(stop)
                valid_metrics = None
                if reason != "interrupted" or finished:
                    valid_metrics = self.evaluate_split("valid", stop=stop)
                if valid_metrics is None:  # stopped while training or validating
                    if finished:  # a resumed run re-validates this epoch without training
                        self.batch_in_epoch = self._num_batches("train")
                    path = self._save_last()
                    log.warning("%s: stopped at step %d; checkpoint saved to %s",
                                signal.Signals(stop.signum).name, self.step, path)
                    return self._finish(FitResult(
                        "interrupted", self.epoch, self.step, self.exp_dir, path,
                        self.best.best_path(), signum=stop.signum,
                    ))
                if finished:
                    self.batch_in_epoch = 0
                    self.partial_sums = {}
                    self.epoch += 1
                if reason is not None:
                    status = reason
                self._end_epoch(train_metrics, valid_metrics, time.perf_counter() - started,
                                partial=not finished)
        result = FitResult(status, self.epoch, self.step, self.exp_dir, self.ckpt_dir / LAST,
                           self.best.best_path())
        if trainer.test:
            result.test_metrics = self._test()
        return self._finish(result)

    def _validate_last_position(self, stop: _StopRequest) -> FitResult | None:
        """Validate, log and checkpoint the position a run reached at ``max_steps`` when a
        signal stopped it before its validation, as the run would have done uninterrupted.
        Returns the interrupted result when a signal stops this validation too."""
        valid = self.evaluate_split("valid", stop=stop)
        if valid is None:
            path = self._save_last()
            return self._finish(FitResult("interrupted", self.epoch, self.step, self.exp_dir,
                                          path, self.best.best_path(), signum=stop.signum))
        train_metrics = _means(self.partial_sums, "train_")
        finished = self.batch_in_epoch >= self._num_batches("train")
        if finished:
            self.batch_in_epoch, self.partial_sums = 0, {}
            self.epoch += 1
        self._end_epoch(train_metrics, valid, 0.0, partial=not finished)
        return None

    def _end_epoch(self, train: dict[str, float], valid: dict[str, float], seconds: float,
                   partial: bool) -> None:
        value = valid.get(self.monitor, math.nan)
        # a partial epoch (stopped by max_steps) is logged at its fraction, e.g. 2.4: strictly
        # between the whole epochs, so that a resumed run replaces the row
        done = 0.0
        if partial:
            fraction = self.batch_in_epoch / self._num_batches("train")
            done = min(max(math.floor(fraction * 1000) / 1000, 0.001), 0.999)
        row = {"epoch": self.epoch + done, "step": self.step,
               "lr": self.optimizer.param_groups[0]["lr"], "seconds": seconds, **train, **valid}
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and not partial:
            if math.isfinite(value):
                self.scheduler.step(value)
        summary = "  ".join(f"{k}={v:.4g}" for k, v in row.items() if k not in ("epoch", "step"))
        # numbered as the progress bar and best-epochNNN: the epoch in progress, from 1
        log.info("epoch %d/%d%s (step %d): %s", math.ceil(row["epoch"]),
                 self.config.trainer.max_epochs,
                 f" (partial: {done:.0%} of its batches)" if partial else "", self.step, summary)
        self.validated = True
        if not self.dist.is_main:
            return
        # the row first, then the checkpoints: a run killed in between resumes from the previous
        # last.pt, drops the row (its epoch is after the checkpoint's) and redoes it exactly
        assert self.metrics_logger is not None
        self.metrics_logger.log(row)
        state = self._state()
        best = self.best.add(state, value, math.ceil(row["epoch"]), self.monitor)
        if best is not None:
            rank = "new best" if best == self.best.best_path() else f"top {self.best.keep}"
            log.info("%s %s=%.4f -> %s", rank, self.monitor, value, best)
        state["best"] = self.best.entries
        save_checkpoint(state, self.ckpt_dir / LAST)
        if time.monotonic() - self._last_plot > PLOT_INTERVAL_S:
            self.metrics_logger.plot()
            self._last_plot = time.monotonic()

    def _test(self) -> dict[str, float]:
        """Evaluate the best checkpoint (else the current weights) on the test split (rank 0)."""
        if not self.dist.is_main:
            return {}
        best = self.best.best_path()
        model = self.model
        if best is not None:
            model.load_state_dict(load_checkpoint(best, map_location=self.device)["model"])
        world, self.dist = self.dist, distributed.DistInfo()  # rank 0 alone sees every item
        try:
            metrics = self.evaluate_split("test", model)
        finally:
            self.dist = world
        where = str(best) if best is not None else "last"
        metrics["checkpoint"] = where  # type: ignore[assignment]
        with atomic_write(self.exp_dir / "test_metrics.json") as tmp:
            tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        log.info("test: %s", "  ".join(
            f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
        return metrics

    def _finish(self, result: FitResult) -> FitResult:
        # the 1-based epoch the run last trained in: the one the bar, the log and best-epochNNN
        # name (epoch 2 when it stopped half-way through the second)
        result.last_epoch = self.epoch + (1 if self.batch_in_epoch else 0)
        result.max_epochs = self.config.trainer.max_epochs
        if self.metrics_logger is not None:
            self.metrics_logger.plot()
            self.metrics_logger.close()
        return result


def _accumulate(sums: dict[str, torch.Tensor], metrics: dict[str, torch.Tensor],
                weights: torch.Tensor | None = None) -> None:
    """Add the per-item ``metrics`` ``[B]`` (times ``weights [B]`` if given) to ``sums``."""
    for name, values in metrics.items():
        values = values.detach().double()
        total = (values * weights).sum() if weights is not None else values.sum()
        sums[name] = sums[name] + total if name in sums else total


def _totals(sums: dict[str, torch.Tensor], count: torch.Tensor, names: Sequence[str],
            reduce: bool) -> dict[str, float]:
    """Sums of the metrics ``names`` and the item count (key :data:`COUNT`), added over
    processes if ``reduce``. Every process reduces the same tensor, also one that saw no
    batch (a resumed epoch with none left, a short shard): its sums count as zeros."""
    zero = torch.zeros((), dtype=torch.float64, device=count.device)
    packed = torch.stack([sums.get(n, zero) for n in sorted(names)] + [count])
    if reduce:
        distributed.all_reduce_sum(packed)
    values = packed.tolist()
    if not values[-1]:
        return {}
    return {**dict(zip(sorted(names), values[:-1])), COUNT: values[-1]}


def _means(totals: dict[str, float], prefix: str) -> dict[str, float]:
    """``{prefix + name: sum / count}`` from :func:`_totals`."""
    count = totals.get(COUNT, 0.0)
    return {prefix + k: v / count for k, v in totals.items() if k != COUNT} if count else {}


def _progress(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar when ``enabled`` and stderr is a terminal, else None."""
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    # the bar stays on screen when done: one line per epoch (and validation) to look back at
    return tqdm(total=total, desc=desc, unit="batch", dynamic_ncols=True, leave=True)


def train(config: Config, resume: bool = False) -> FitResult:
    """Train ``config`` (see :class:`Trainer`); joins/leaves the DDP process group as needed."""
    try:
        trainer = Trainer(config, resume=resume)
        return trainer.fit()
    finally:
        trainer = None  # its DDP wrapper holds the process group that shutdown() frees
        distributed.shutdown()
