"""The training loop: one :class:`Trainer` for every task, on CPU, one GPU or many (torchrun).

``Trainer(config).fit()`` builds the datasets, model, optimizer and scheduler from a
:class:`~audionets.training.config.Config`, trains with optional AMP, gradient accumulation
and clipping, validates every epoch, logs ``metrics.csv``/``curves.png``, keeps ``last.pt``
and the best ``keep_best`` checkpoints, and finally evaluates the best checkpoint on the test
split (``test_metrics.json``). ``Trainer(config, resume=True)`` continues exactly from
``experiment_dir/checkpoints/last.pt`` (also from the middle of an epoch). SIGINT/SIGTERM
stop at the next optimizer step with a checkpoint.

The loop's parts live beside it: which items each batch holds (:mod:`.loading`), where the
run is and its checkpoint (:mod:`.state`), metric sums over processes (:mod:`.metric_sums`).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn
from torch.utils.data import Dataset

from audionets.errors import CheckpointError, ConfigError, OutputError, TrainingError
from audionets.hub import load_model
from audionets.registry import DATASETS, MODELS
from audionets.serialization.checkpoints import (
    LAST,
    BestCheckpoints,
    default_monitor_mode,
    load_checkpoint,
    rank_best,
    save_checkpoint,
)
from audionets.serialization.weights import load_weights
from audionets.tasks import Task, build_task
from audionets.training import distributed
from audionets.training.config import SPLITS, Config, OptimizerConfig, TrainerConfig, save_config
from audionets.training.loading import SplitLoaders, iterate, rng_kept, seed_everything, to_device
from audionets.training.metric_sums import MetricSums, MetricTotals
from audionets.training.metrics_log import MetricsLogger
from audionets.training.resolve import resolve_config
from audionets.training.state import (
    Checkpoint,
    Trainables,
    TrainState,
    checkpoint_dict,
    read_checkpoint,
)
from audionets.utils import atomic_write, check_out_dir, folder_lock, resolve_device

log = logging.getLogger("audionets.train")

#: redraw curves.png after an epoch when this many seconds passed since the last drawing
#: (it is always drawn when training ends)
PLOT_INTERVAL_S = 60.0
#: without a terminal for a progress bar, log a progress line at most this often
LOG_INTERVAL_S = 60.0
#: training stops (TrainingError) after this many consecutive batches with a NaN/Inf loss
MAX_NON_FINITE_LOSSES = 5


def load_registries() -> None:
    """Import the packages whose import registers the models and datasets."""
    import audionets.data  # noqa: F401
    import audionets.models  # noqa: F401


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` -> bf16 (or fp16 on GPUs without bf16) on CUDA, fp32 on CPU."""
    if name != "auto":
        return name
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


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
    # a model that records its full config (every setting, defaults included) is compared on it
    differing = (_differing_arguments(source.config, model.config) if hasattr(model, "config")
                 else _differing_arguments(meta.config["model"], config.model))
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
    mode = config.trainer.monitor_mode or default_monitor_mode(monitor)
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
    """Trains ``config`` (see module docstring); ``resume`` continues from ``last.pt``.

    Where the run is lives in :attr:`state` (a :class:`~audionets.training.state.TrainState`);
    which items each batch holds, in :attr:`loaders`.
    """

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
        load_registries()
        self.config = config = resolve_config(config)
        # the test split too, so that a gap in its files fails now, not after the training
        splits = SPLITS if config.trainer.test else SPLITS[:2]
        self.datasets = {split: build_dataset(config, split) for split in splits}
        where = f"data.name={config.data['name']}"
        with rng_kept():  # reading an item must not move the seed of the weights
            self.task.check_items(self.datasets["train"], where)
        labels = self.task.dataset_labels(self.datasets["train"], where)
        self.config = config = resolve_config(config, labels)
        self.loaders = SplitLoaders(self.datasets, config, self.dist, self.device)
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
        self.batches_per_epoch = self.loaders.num_batches("train")
        steps_per_epoch = math.ceil(self.batches_per_epoch / config.trainer.accumulate)
        self.max_epochs = epochs_to_train(config.trainer, steps_per_epoch)
        total = self.max_epochs * steps_per_epoch
        # optimizer steps the run will make: the cosine schedule ends there
        if config.trainer.max_steps is not None:
            total = min(total, config.trainer.max_steps)
        self.scheduler = build_scheduler(config, self.optimizer, self.monitor_mode, total)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.state = TrainState()
        self._bad_losses = 0  # consecutive batches with a non-finite loss
        self.best = BestCheckpoints(self.ckpt_dir, config.trainer.keep_best, self.monitor_mode,
                                    rule=config.trainer.checkpoint_rule)
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
            f"{self.exp_dir}: training diverged at step {self.state.step + 1} (epoch "
            f"{self.state.epoch + 1}): {what}; lower optimizer.lr, set trainer.grad_clip or "
            f"check the data{kept}"
        )

    def _trainables(self) -> Trainables:
        return Trainables(self.model, self.optimizer, self.scheduler, self.scaler)

    def _checkpoint(self) -> Checkpoint:
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            self._diverged("the weights hold NaN or Inf values")
        return checkpoint_dict(self._trainables(), self.state, self.config.to_dict(),
                               self.config.labels, self.best.entries,
                               (self.monitor, self.monitor_mode, self.best.rule))

    def _save_last(self) -> Path:
        path = self.ckpt_dir / LAST
        if self.dist.is_main:
            save_checkpoint(self._checkpoint(), path)
        return path

    def _load_last(self) -> None:
        path = self.ckpt_dir / LAST
        self.state, best = read_checkpoint(path, self._trainables(), self.device)
        self.best = BestCheckpoints(self.ckpt_dir, self.config.trainer.keep_best,
                                    self.monitor_mode, best, self.config.trainer.checkpoint_rule)
        state = self.state
        log.info("resuming %s after epoch %d%s, step %d", path, state.epoch,
                 f" + {state.batch_in_epoch} batches" if state.batch_in_epoch else "", state.step)
        if self.dist.enabled and not self.dist.is_main:
            seed_everything(self.config.seed + self.dist.rank + state.step)

    # ----------------------------------------------------------------- loops
    def _at_max_steps(self) -> bool:
        max_steps = self.config.trainer.max_steps
        return max_steps is not None and self.state.step >= max_steps

    def _run_over(self) -> bool:
        """Whether the run has trained as far as it should (its last position may still need
        validating)."""
        return self._at_max_steps() or self.state.epoch >= self.max_epochs

    def _train_epoch(self, stop: _StopRequest) -> bool:
        """Train the rest of epoch ``state.epoch``, up to its end or ``max_steps``, and keep its
        train metric totals in the state. False when a stop signal ended it first."""
        trainer, state = self.config.trainer, self.state
        first = state.batch_in_epoch
        loader = self.loaders.loader("train", state.epoch, first)
        total = len(loader)
        # a resumed epoch continues the totals of its first part (all-reduced: rank 0 adds them)
        sums = MetricSums(self.device, state.train_totals if first and self.dist.is_main else None)
        self.train_model.train()
        stopped = False
        items, start, last_log = 0, time.perf_counter(), time.monotonic()
        bar = _progress(total, f"epoch {state.epoch + 1}/{self.max_epochs}",
                        trainer.progress and self.dist.is_main)
        self.optimizer.zero_grad(set_to_none=True)
        for index, batch in enumerate(iterate(loader)):
            batch = to_device(batch, self.device)
            state.batch_in_epoch = first + index + 1
            update = state.batch_in_epoch % trainer.accumulate == 0 or index == total - 1
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
            sums.add(metrics)
            items += Task.batch_size(batch)
            if update:
                self._optimizer_step()
                state.validated = False
            rate = items / max(time.perf_counter() - start, 1e-9)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4g}", items_s=f"{rate:.1f}")
            elif self.dist.is_main and time.monotonic() - last_log > LOG_INTERVAL_S:
                last_log = time.monotonic()  # no terminal (a batch job): a line now and then
                log.info("epoch %d: batch %d/%d, step %d, loss %.4g, %.1f items/s",
                         state.epoch + 1, state.batch_in_epoch, first + total, state.step,
                         loss.item(), rate)
            if update:  # every process asks, so that all leave the loop at the same batch
                stopped = distributed.any_process(stop.signum is not None, self.device)
                if stopped or self._at_max_steps():
                    break
        if bar is not None:
            bar.close()
        state.train_totals = sums.reduce(self.task.all_metric_names(), self.dist.enabled)
        return not stopped

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
            log.warning("step %d: non-finite gradient norm, skipping this update",
                        self.state.step + 1)
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        if isinstance(self.scheduler, torch.optim.lr_scheduler.LambdaLR):
            self.scheduler.step()

    @torch.no_grad()
    def evaluate_split(self, split: str, model: nn.Module | None = None,
                       stop: _StopRequest | None = None,
                       loaders: SplitLoaders | None = None) -> MetricTotals | None:
        """The task metrics' totals over ``split`` (their means, standard errors), added up
        over the processes of ``loaders`` (default: this run's, all-reduced under DDP).

        Returns None when ``stop`` was signalled before the end.
        """
        model = model or self.train_model
        loaders = loaders or self.loaders
        model.eval()
        sums = MetricSums(self.device)
        loader = loaders.loader(split, 0)
        bar = _progress(len(loader), split, self.config.trainer.progress and self.dist.is_main)
        done = 0
        for batch in iterate(loader):
            batch = to_device(batch, self.device)
            with self._autocast():
                _, metrics = self.task.step(model, batch)
            size = next(iter(metrics.values())).numel()
            sums.add(metrics, loaders.real_items(split, done, size))
            done += size
            if bar is not None:
                bar.update(1)
            if stop is not None and distributed.any_process(stop.signum is not None, self.device):
                if bar is not None:
                    bar.close()
                return None
        if bar is not None:
            bar.close()
        return sums.reduce(self.task.all_metric_names(), loaders.dist.enabled)

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
        config, state = self.config, self.state
        if self.dist.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.ckpt_dir.glob(".*.pt.tmp"):  # left by a killed atomic write
                stale.unlink(missing_ok=True)
            save_config(config, self.exp_dir / "config.yaml")
            self.metrics_logger = MetricsLogger(
                self.exp_dir, resume_epoch=state.epoch if self.resume else None
            )
        log.info("training %s on %s (%s, %d process%s): %d train / %d valid items -> %s",
                 config.model["name"], self.device, self.precision, self.dist.world_size,
                 "es" if self.dist.world_size > 1 else "", len(self.datasets["train"]),
                 len(self.datasets["valid"]), self.exp_dir)
        with _StopRequest() as stop:
            # each round trains the rest of an epoch (or nothing: a run resumed after its
            # training, stopped while validating or at max_steps), validates and saves that
            while not (state.validated and self._run_over()):
                started = time.perf_counter()
                trained = self._at_max_steps() or state.epoch_trained(self.batches_per_epoch)
                if not trained and not self._train_epoch(stop):
                    return self._interrupted(stop)
                valid = self.evaluate_split("valid", stop=stop)
                if valid is None:
                    return self._interrupted(stop)
                self._end_epoch(valid, time.perf_counter() - started)
        status = "max_steps" if self._at_max_steps() else "completed"
        result = FitResult(status, state.epoch, state.step, self.exp_dir, self.ckpt_dir / LAST,
                           self.best.best_path())
        if config.trainer.test:
            result.test_metrics = self._test()
        return self._finish(result)

    def _interrupted(self, stop: _StopRequest) -> FitResult:
        """Save ``last.pt`` where a stop signal left the run (the resumed run redoes what is not
        in it) and report the interruption."""
        path = self._save_last()
        assert stop.signum is not None
        log.warning("%s: stopped at step %d; checkpoint saved to %s",
                    signal.Signals(stop.signum).name, self.state.step, path)
        return self._finish(FitResult("interrupted", self.state.epoch, self.state.step,
                                      self.exp_dir, path, self.best.best_path(),
                                      signum=stop.signum))

    def _end_epoch(self, totals: MetricTotals, seconds: float) -> None:
        """Log the metrics row of the position reached and save its checkpoints; a trained
        epoch is counted done first."""
        state = self.state
        train = state.train_totals.means("train_")
        valid = totals.means("valid_")
        value = valid.get(self.monitor, math.nan)
        # a partial epoch (stopped by max_steps) is logged at its fraction, e.g. 2.4: strictly
        # between the whole epochs, so that a resumed run replaces the row
        partial = not state.epoch_trained(self.batches_per_epoch)
        done = 0.0
        if partial:
            fraction = state.batch_in_epoch / self.batches_per_epoch
            done = min(max(math.floor(fraction * 1000) / 1000, 0.001), 0.999)
        else:
            state.next_epoch()
        row = {"epoch": state.epoch + done, "step": state.step,
               "lr": self.optimizer.param_groups[0]["lr"], "seconds": seconds, **train, **valid}
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and not partial:
            if math.isfinite(value):
                self.scheduler.step(value)
        summary = "  ".join(f"{k}={v:.4g}" for k, v in row.items() if k not in ("epoch", "step"))
        # numbered as the progress bar and best-epochNNN: the epoch in progress, from 1
        log.info("epoch %d/%d%s (step %d): %s", math.ceil(row["epoch"]), self.max_epochs,
                 f" (partial: {done:.0%} of its batches)" if partial else "", state.step, summary)
        state.validated = True
        if not self.dist.is_main:
            return
        # the row first, then the checkpoints: a run killed in between resumes from the previous
        # last.pt, drops the row (its epoch is after the checkpoint's) and redoes it exactly
        assert self.metrics_logger is not None
        self.metrics_logger.log(row)
        checkpoint = self._checkpoint()
        se = totals.standard_error(self.monitor.removeprefix("valid_"))
        best = self.best.add(checkpoint, value, math.ceil(row["epoch"]), self.monitor, se,
                             state.step)
        if best is not None:
            top = rank_best(self.best.entries, self.monitor_mode)[0]
            if best != self.best.best_path():
                rank = f"top {self.best.keep}"
            elif top["path"] == best.name:
                rank = "new best"
            else:  # trainer.checkpoint_rule one_se
                rank = f"chosen, within one standard error of the best ({top['value']:.4f})"
            log.info("%s %s=%.4f (+-%.4f) -> %s", rank, self.monitor, value, se, best)
        checkpoint["best"] = self.best.entries
        save_checkpoint(checkpoint, self.ckpt_dir / LAST)
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
        # rank 0 alone reads every item: nothing to add up over processes
        totals = self.evaluate_split("test", model, loaders=self.loaders.alone())
        assert totals is not None  # no stop request to end it early
        metrics = totals.means("test_")
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
        result.last_epoch = self.state.epoch + (1 if self.state.batch_in_epoch else 0)
        result.max_epochs = self.max_epochs
        if self.metrics_logger is not None:
            self.metrics_logger.plot()
            self.metrics_logger.close()
        return result


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
