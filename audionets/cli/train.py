"""``audionets train CONFIG [key=value ...] [--resume]``: train a recipe.

Examples::

    audionets train recipes/synth_sep/config.yaml trainer.max_epochs=3 trainer.device=cpu
    audionets train recipes/wsj0mix/config.yaml data.root=/data/wsj0-2mix --resume
    torchrun --nproc_per_node=4 -m audionets train recipes/wsj0mix/config.yaml data.root=...

Overrides are dotted keys with YAML values; every recipe accepts at least
``trainer.max_epochs``, ``trainer.max_steps``, ``trainer.device=cpu|cuda|auto``,
``experiment_dir`` and ``data.root``.
"""

from __future__ import annotations

import argparse

HELP = "train a model from a recipe config (key=value overrides, --resume, torchrun for DDP)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="recipe config YAML (e.g. recipes/toy/config.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. trainer.max_epochs=3 data.root=/data/x")
    parser.add_argument("--resume", action="store_true",
                        help="continue from experiment_dir/checkpoints/last.pt with the config "
                             "the run was started with (its config.yaml); overrides given here "
                             "apply on top, e.g. trainer.max_epochs=60")


def run(args: argparse.Namespace) -> int:
    import logging
    import signal

    from audionets.training.config import load_config, resumed_config
    from audionets.training.distributed import env_info
    from audionets.training.trainer import train

    rank = env_info().rank
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="%(asctime)s %(message)s" if rank == 0 else f"[rank {rank}] %(message)s",
        datefmt="%H:%M:%S",
    )
    config = load_config(args.config, args.overrides)
    if args.resume:  # the run's own config: a plain --resume must not reset its overrides
        config = resumed_config(config, args.overrides)
        logging.getLogger("audionets.train").info(
            "resuming with %s/config.yaml%s", config.experiment_dir,
            f" + {' '.join(args.overrides)}" if args.overrides else "")
    result = train(config, resume=args.resume)
    if result.status == "interrupted":
        overrides = " ".join(args.overrides)
        print(f"audionets train: stopped by {signal.Signals(result.signum or 2).name}; "
              f"checkpoint saved to {result.last_checkpoint}. Resume with:\n"
              f"  audionets train {args.config} {overrides}{' ' if overrides else ''}--resume")
        return 128 + int(result.signum or signal.SIGINT)
    if rank == 0:
        print(f"audionets train: {result.status} in epoch {result.last_epoch}/{result.max_epochs}, "
              f"step {result.step}; "
              f"results in {result.experiment_dir}")
    return 0
