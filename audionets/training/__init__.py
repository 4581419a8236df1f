"""Training: configs with overrides, tasks, the trainer (AMP, DDP, resume), checkpoints, logs.

Typical use is the CLI (``audionets train CONFIG key=value ...``); from Python::

    from audionets.training import load_config, train
    result = train(load_config("recipes/toy/config.yaml", ["trainer.max_epochs=1"]))
"""

from audionets.training.config import Config, load_config
from audionets.training.trainer import FitResult, Trainer, train

__all__ = ["Config", "FitResult", "Trainer", "load_config", "train"]
