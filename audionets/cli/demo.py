"""``audionets demo``: separate a two-talker mixture of held-out speech and show the result.

By default the mixture is one of the few shipped with the package (``audionets/data/demo/``):
two synthesized voices of the ``tts_mix`` *test* split, whose languages and voice variants no
shipped model heard in training (so the demo needs no synthesizer installed). ``--synthetic``
takes a ``synth_mix`` test mixture of built-in talkers instead. It separates the mixture,
prints the SI-SNR improvement, and writes to the output folder (files of a previous demo run
there are replaced)::

    mixture.wav                  the input mixture
    reference_s1.wav, ...        the true sources
    estimate_s1.wav, ...         the model's sources, in the order of the references
    spectrograms.png             log spectrograms of all of the above
"""

from __future__ import annotations

import argparse
from pathlib import Path

from audionets.cli._shared import add_device_argument

HELP = "separate a two-talker mixture of held-out voices and plot the result"

# data settings that describe one training run rather than the test distribution
_NOT_DISTRIBUTION = {"name", "split", "segment_seconds", "dynamic", "num_examples", "root",
                     "sample_rate", "num_speakers", "train", "valid", "test"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", default="demo_output", metavar="DIR",
                        help="folder for the demo files (default: ./demo_output)")
    parser.add_argument("--model", default=None, metavar="NAME|DIR|HUB_ID",
                        help="separation model (default: sudormrf-tts-2spk)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="which test mixture to use (default: 0)")
    parser.add_argument("--synthetic", action="store_true",
                        help="a mixture of the built-in synthetic talkers (synth_mix test split) "
                             "instead of the shipped held-out speech")
    add_device_argument(parser)


def test_mixture(separator, index: int) -> dict:
    """Item ``index`` of the synth_mix test split matching the separator's rate and sources.

    Uses the data settings of the model's training config (noise, gains, seed) when it was
    trained on synth_mix, so the test talkers are disjoint from the training ones.
    """
    import audionets.data  # noqa: F401  (registers the datasets)
    from audionets.registry import DATASETS

    data = dict((separator.config or {}).get("data") or {})
    kwargs = {k: v for k, v in data.items() if k not in _NOT_DISTRIBUTION}
    if data.get("name") != "synth_mix":
        kwargs = {}
    dataset = DATASETS.build(
        "synth_mix", _where="data", split="test", sample_rate=separator.sample_rate,
        num_speakers=separator.num_sources, segment_seconds=None, **kwargs,
    )
    return dataset[index % len(dataset)]


def speech_mixture(index: int, sample_rate: int) -> dict:
    """Shipped mixture ``index`` (modulo their number) of held-out synthesized voices.

    Returns ``{"mix": [T], "sources": [2, T], "id": str, "about": str}`` at ``sample_rate``.
    """
    import json

    from audionets import audio
    from audionets.data import DEMO_MIXTURES

    index_file = DEMO_MIXTURES / "index.json"
    entries = json.loads(index_file.read_text())
    entry = entries[index % len(entries)]
    sources, _ = audio.load(DEMO_MIXTURES / entry["file"], sample_rate=sample_rate)
    voices = " and ".join(f"{v} ({lang})" for v, lang in zip(entry["voices"], entry["languages"]))
    return {"mix": sources.sum(0), "sources": sources, "id": entry["id"],
            "about": f"held-out voices {voices}, unheard in training"}


def plot_spectrograms(path: Path, signals: dict[str, "object"], sample_rate: int) -> None:
    """Save log-magnitude spectrograms of ``signals`` (name -> ``[T]`` tensor) to ``path``.

    The mixture spans the first row; then one row per source: reference left, estimate right.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from audionets.plots import log_spectrogram
    from audionets.utils import atomic_write

    names = list(signals)
    rows = 1 + (len(names) - 1) // 2
    fig = plt.figure(figsize=(10, 2.2 * rows), constrained_layout=True)
    grid = fig.add_gridspec(rows, 2)
    spectra = {name: log_spectrogram(wav, sample_rate) for name, wav in signals.items()}
    top = max(float(s.max()) for s in spectra.values())
    duration = signals[names[0]].shape[-1] / sample_rate
    axes = [fig.add_subplot(grid[0, :])]
    axes += [fig.add_subplot(grid[1 + i // 2, i % 2]) for i in range(len(names) - 1)]
    for ax, name in zip(axes, names):
        ax.imshow(spectra[name].numpy(), origin="lower", aspect="auto", cmap="magma",
                  vmin=top - 80, vmax=top, extent=(0, duration, 0, sample_rate / 2000))
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("kHz")
    for ax in axes[-2:]:
        ax.set_xlabel("time (s)")
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from audionets import audio, metrics
    from audionets.inference.separator import DEFAULT_SEPARATOR, Separator
    from audionets.utils import prepare_out_dir

    separator = Separator.from_pretrained(args.model or DEFAULT_SEPARATOR, device=args.device)
    out_dir = prepare_out_dir(args.out_dir)
    if args.synthetic or separator.num_sources != 2:
        item = test_mixture(separator, args.seed)
        item["about"] = (f"synth_mix test split, {separator.num_sources} built-in talkers unseen "
                         f"in training")
    else:
        item = speech_mixture(args.seed, separator.sample_rate)
    mix, sources = item["mix"], item["sources"]  # [T], [S, T]
    estimates = separator.separate_batch(mix[None])[0].T  # [S, T]
    _, perm = metrics.pit(metrics.pairwise_neg_si_snr, estimates[None], sources[None])
    estimates = metrics.reorder(estimates[None], perm)[0]
    improvement = metrics.si_snr_improvement(estimates, sources, mix)  # [S]

    rate = separator.sample_rate
    signals = {"mixture": mix}
    written = [out_dir / "mixture.wav"]
    audio.save(written[0], mix, rate, subtype="FLOAT")
    for k in range(sources.shape[0]):
        for kind, wav in (("reference", sources[k]), ("estimate", estimates[k])):
            name = f"{kind}_s{k + 1}"
            signals[name] = wav
            written.append(out_dir / f"{name}.wav")
            audio.save(written[-1], wav, rate, subtype="FLOAT")
    written.append(out_dir / "spectrograms.png")
    plot_spectrograms(written[-1], signals, rate)

    per_source = ", ".join(f"s{k + 1} {v:.1f} dB" for k, v in enumerate(improvement.tolist()))
    print(f"mixture {item['id']} ({mix.shape[-1] / rate:.1f} s; {item['about']})")
    print(f"SI-SNR improvement: {float(improvement.mean()):.1f} dB ({per_source})")
    for path in written:
        print(path)
    return 0
