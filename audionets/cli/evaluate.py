"""``audionets evaluate MODEL --data CONFIG_OR_DATASET [--split test] [--out rows.csv] ...``.

Examples::

    audionets evaluate exp/synth_sep --data recipes/synth_sep/config.yaml --out results.csv
    audionets evaluate sepformer-synth-2spk --data synth_mix data.num_examples=100 --json s.json
    audionets evaluate exp/events/checkpoints/last.pt --data synth_events --out events.csv

MODEL is anything :func:`audionets.hub.load_model` accepts. Per-file metrics go to ``--out``
(CSV), the summary (mean, median, std, count per metric) to stdout and ``--json``; for
classifiers the confusion matrix is printed and saved next to ``--out``
(``<stem>_confusion.csv`` / ``.png``).
"""

from __future__ import annotations

import argparse

from audionets.cli._shared import add_device_argument, number

HELP = "evaluate a model on a dataset split: per-file metrics CSV and a summary"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="shipped model name, model/experiment folder, "
                                      "checkpoint .pt, SpeechBrain folder or hub id")
    parser.add_argument("--data", required=True, metavar="CONFIG_OR_DATASET",
                        help="a recipe config YAML (its data section) or a dataset name "
                             "(synth_mix)")
    parser.add_argument("overrides", nargs="*", metavar="data.key=value",
                        help="data overrides, e.g. data.root=/data/wsj0-2mix data.num_examples=50")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--out", metavar="CSV", help="write per-file metrics to this CSV file")
    parser.add_argument("--json", metavar="JSON",
                        help="write the summary (with the model and data as given) to this file")
    add_device_argument(parser)
    parser.add_argument("--limit", type=number(int, 1), metavar="N",
                        help="evaluate only the first N files")
    parser.add_argument("--no-sdr", action="store_true",
                        help="separation: skip BSS Eval SDR/SDRi (the slow part)")
    parser.add_argument("--shifts", type=number(int, 1), default=1, metavar="N",
                        help="separation: average N passes over the input delayed by fractions "
                             "of the encoder hop, as `separate --shifts N` (default: 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _outputs(args: argparse.Namespace):
    from pathlib import Path

    from audionets.errors import OutputError
    from audionets.utils import check_out_dir, real_path

    paths = {}
    if args.out:
        out = Path(args.out)
        paths["csv"] = out
        paths["confusion_csv"] = out.with_name(f"{out.stem}_confusion.csv")
        paths["confusion_png"] = out.with_name(f"{out.stem}_confusion.png")
    if args.json:
        paths["json"] = Path(args.json)
    for path in paths.values():
        if path.is_dir():
            raise OutputError(f"{path}: is a folder; give a file name")
        if not path.parent.is_dir():
            raise OutputError(f"{path}: folder {path.parent} does not exist; create it first")
        check_out_dir(path.parent)  # writable, before hours of evaluation
        if path.exists() and not args.overwrite:
            raise OutputError(f"{path}: already exists; pass --overwrite or choose another name")
    if "csv" in paths and "json" in paths and real_path(paths["csv"]) == real_path(paths["json"]):
        raise OutputError(f"{args.json}: --out and --json name the same file; give two names")
    return paths


def _refuse_inputs(paths: dict, inputs: list) -> None:
    """OutputError for an output that is an input (the --data config, the model file) or an
    existing file inside an input folder (a data root, the model folder), --overwrite or not:
    ``--out DS/test.csv`` would replace the dataset's manifest."""
    from audionets.errors import OutputError
    from audionets.utils import real_path

    for path in paths.values():
        target = real_path(path)
        for source in inputs:
            where = real_path(source)
            if target == where or (path.exists() and target.is_relative_to(where)):
                raise OutputError(f"{path}: is an input of this evaluation (in {source}); "
                                  "choose an output outside the data and the model")


def _shift_averaged(model, meta, shifts: int, device):
    """``model`` as ``Separator(shifts=shifts)`` runs it (without rescaling: the metrics are
    the model's), as a module ``mix [B, T] -> [B, S, T]``."""
    import torch

    from audionets.errors import ConfigError
    from audionets.inference import Separator

    if meta.task != "separation":
        raise ConfigError(f"--shifts applies to separation models; {meta.source} is a "
                          f"{meta.task} model")
    separator = Separator(model, meta.sample_rate, device=device,
                          config=meta.config, rescale=False, shifts=shifts)

    class ShiftAveraged(torch.nn.Module):
        num_sources = separator.num_sources

        def forward(self, mix: torch.Tensor) -> torch.Tensor:
            return separator.separate_batch(mix).transpose(1, 2).to(mix.device)

    return ShiftAveraged()


def run(args: argparse.Namespace) -> int:
    import logging
    import sys
    from pathlib import Path

    from audionets import hub
    from audionets.nn.prepack import prepack_linear_layers
    from audionets.training.evaluate import (
        build_eval_dataset,
        eval_inputs,
        evaluate,
        format_summary,
        write_confusion,
        write_json,
        write_rows_csv,
    )
    from audionets.utils import resolve_device

    paths = _outputs(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    device = resolve_device(args.device, key="--device")
    model, meta = hub.load_model(args.model, device=device)
    _refuse_inputs(paths, eval_inputs(args.data, args.overrides, meta.source))
    prepack_linear_layers(model)  # as Separator.from_pretrained: on CPU, faster linear layers
    if args.shifts != 1:
        model = _shift_averaged(model, meta, args.shifts, device)
    dataset = build_eval_dataset(args.data, args.overrides, args.split, meta.config)
    result = evaluate(model, meta.task, dataset, device=device, labels=meta.labels,
                      limit=args.limit, sdr=not args.no_sdr, progress=sys.stderr.isatty())
    print(f"{meta.task} model {meta.source} on {args.data} "
          f"({args.split}, {len(result.rows)} files)")
    print(format_summary(result))
    if "csv" in paths:
        write_rows_csv(result.rows, paths["csv"])
        if result.confusion is not None:
            write_confusion(result, paths["confusion_csv"], paths["confusion_png"])
    if "json" in paths:
        summary = dict(result.summary)
        if result.confusion is not None:
            summary["confusion"] = {"labels": result.labels, "matrix": result.confusion.tolist()}
        # model and data as typed (a shipped name stays a name); model_path: what was loaded,
        # relative to the working directory when inside it (no machine paths in shared files)
        source = Path(meta.source).absolute()
        model_path = (str(source.relative_to(Path.cwd())) if source.is_relative_to(Path.cwd())
                      else meta.source)
        write_json({"model": args.model, "model_path": model_path, "data": args.data,
                    "split": args.split, "files": len(result.rows), "shifts": args.shifts,
                    "summary": summary}, paths["json"])
    return 0
