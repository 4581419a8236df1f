"""``audionets export EXPERIMENT_DIR OUT_DIR``: a trained run -> a pretrained model folder.

Writes ``OUT_DIR/config.yaml`` + ``OUT_DIR/model.safetensors`` from the best checkpoint of the
experiment (else ``last.pt``), or from a checkpoint file, loadable with
``audionets.hub.load_model(OUT_DIR)`` / ``Separator.from_pretrained(OUT_DIR)``.
"""

from __future__ import annotations

import argparse

HELP = "export a trained experiment (or checkpoint) as a pretrained model folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment",
                        help="experiment folder (config.yaml + checkpoints/) or a .pt checkpoint")
    parser.add_argument("out_dir", help="output folder for config.yaml + model.safetensors")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model folder")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from audionets import hub
    from audionets.errors import OutputError
    from audionets.utils import check_out_dir

    out = Path(args.out_dir)
    check_out_dir(out)
    if Path(args.experiment).resolve() == out.resolve():
        raise OutputError(f"{out}: is the input; choose another output folder")
    if (out / "checkpoints").is_dir():
        raise OutputError(f"{out}: is an experiment folder (it has checkpoints/); export to a "
                          "folder of its own")
    existing = [name for name in (hub.CONFIG, hub.WEIGHTS) if (out / name).exists()]
    if existing and not args.overwrite:
        raise OutputError(f"{out}: already holds {' and '.join(existing)}; pass --overwrite or "
                          "choose another folder")
    model, meta = hub.load_model(args.experiment)
    config = dict(meta.config)
    # keep what describes the model, drop training-only sections
    meta.config = {k: config[k] for k in ("task", "sample_rate", "model", "labels", "data", "loss")
                   if k in config}
    hub.save_pretrained(model, meta, out)
    params = sum(p.numel() for p in model.parameters())
    print(f"audionets export: {meta.config['model']['name']} ({params:,} parameters) from "
          f"{meta.source} -> {out}")
    return 0
