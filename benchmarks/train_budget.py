"""Separator architectures at an equal CPU budget: SI-SNRi on held-out speech vs CPU-minutes.

Each candidate trains in a fresh worker process with the same data (the same training batches
in the same order: batch ``k`` is drawn with the global RNGs seeded by ``k``), the same loss
(permutation-invariant SI-SNR with SpeechBrain's -30 dB threshold), Adam and gradient clipping,
until the CPU time of its training steps (forward, backward, optimizer; all threads of the
process, ``time.process_time``) reaches the budget. Every ``--eval-every`` CPU-minutes it is
scored on two fixed held-out sets, and the evaluation's own CPU time is not counted:

- ``tts``: 2-talker mixtures of *test voices* of the speech pool (languages, espeak-ng variants
  and festival speakers never heard in training), cropped to ``--eval-seconds``;
- ``synth``: the ``synth_mix`` test set (unseen built-in talkers), same length.

Counting CPU time rather than wall time keeps the comparison fair on a machine shared with
other work; the wall time is reported too. Also reported: parameters and the inference CPU
time per second of audio (4 s input, the worker's threads, median of 5).

    python benchmarks/train_budget.py --pool ~/audionets-runs/speech-pool-8k \\
        --budget-minutes 6 --eval-every 1.5 --out benchmarks/train_budget.json
    python benchmarks/train_budget.py --plot benchmarks/train_budget.json   # curves PNG
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: name -> (model config, learning rate). Sizes chosen so that each trains on 2 CPU cores.
CANDIDATES = {
    # the shipped sepformer-synth-2spk architecture, from scratch
    "sepformer-small": ({"name": "sepformer", "encoder_kernel_size": 16, "encoder_channels": 256,
                         "d_model": 64, "chunk_size": 100, "num_blocks": 2, "intra_layers": 1,
                         "inter_layers": 1, "nhead": 4, "d_ffn": 128}, 1e-3),
    # our DPRNN with a 4x larger encoder stride (4x fewer frames) and narrower blocks
    "dprnn-lite": ({"name": "dprnn", "encoder_kernel_size": 32, "encoder_stride": 16,
                    "encoder_channels": 128, "d_model": 64, "chunk_size": 50, "num_blocks": 4,
                    "lstm_hidden_size": 64}, 1e-3),
    # SuDoRM-RF as in the paper, 8 U-ConvBlocks ("0.5x")
    "sudormrf-0.5x": ({"name": "sudormrf", "num_blocks": 8}, 1e-3),
    # a lighter SuDoRM-RF: stride 16 (800 -> 500 frames/s), 256-channel blocks
    "sudormrf-lite": ({"name": "sudormrf", "encoder_kernel_size": 32, "encoder_stride": 16,
                       "encoder_channels": 256, "hidden_channels": 256, "num_blocks": 8}, 1e-3),
    # the anchor: torchaudio's Conv-TasNet with the paper's best configuration
    "conv_tasnet_base": ({"name": "torchaudio.conv_tasnet_base"}, 1e-3),
}


class TorchaudioConvTasNet(torch.nn.Module):
    """torchaudio's ``conv_tasnet_base`` behind our ``[B, T] -> [B, S, T]`` interface."""

    def __init__(self, num_sources: int = 2) -> None:
        super().__init__()
        from torchaudio.models import conv_tasnet_base

        self.model = conv_tasnet_base(num_sources=num_sources)
        self.num_sources = num_sources

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        return self.model(mix.unsqueeze(1))


def build(config: dict) -> torch.nn.Module:
    if config["name"] == "torchaudio.conv_tasnet_base":
        return TorchaudioConvTasNet()
    from audionets.models import build_model

    return build_model(config)


def eval_sets(pool: str, count: int, seconds: float) -> dict[str, list[dict]]:
    from audionets.registry import DATASETS
    import audionets.data  # noqa: F401  (registers the datasets)

    tts = DATASETS.build("tts_mix", split="test", root=pool, segment_seconds=seconds,
                         num_mixtures=count, auto_prepare=False)
    synth = DATASETS.build("synth_mix", split="test", segment_seconds=seconds,
                           num_examples=count)
    return {"tts": [tts[i] for i in range(count)], "synth": [synth[i] for i in range(count)]}


@torch.inference_mode()
def score(model: torch.nn.Module, items: list[dict]) -> float:
    from audionets.metrics import pairwise_neg_si_snr, pit, reorder, si_snr_improvement

    model.eval()
    values = []
    for start in range(0, len(items), 8):
        group = items[start:start + 8]
        mix = torch.stack([it["mix"] for it in group])
        sources = torch.stack([it["sources"] for it in group])
        estimates = model(mix)
        _, perm = pit(pairwise_neg_si_snr, estimates, sources)
        values += si_snr_improvement(reorder(estimates, perm), sources, mix).mean(-1).tolist()
    model.train()
    return statistics.fmean(values)


def inference_cpu_per_second(model: torch.nn.Module) -> float:
    mix = torch.randn(1, 32000) * 0.1
    times = []
    with torch.inference_mode():
        model.eval()
        model(mix)
        for _ in range(5):
            start = time.process_time()
            model(mix)
            times.append((time.process_time() - start) / 4.0)
        model.train()
    return statistics.median(times)


def worker(args: argparse.Namespace) -> None:
    from audionets.metrics import pit_si_snr_loss, thresholded_mean
    from audionets.registry import DATASETS
    import audionets.data  # noqa: F401

    torch.set_num_threads(args.threads)
    config, lr = CANDIDATES[args.worker]
    torch.manual_seed(0)
    model = build(config)
    sets = eval_sets(args.pool, args.eval_count, args.eval_seconds)
    train = DATASETS.build("tts_mix", split="train", root=args.pool, auto_prepare=False,
                           segment_seconds=args.segment_seconds, num_mixtures=10**9,
                           mix_kinds={"tts": 0.6, "tts_builtin": 0.2, "builtin": 0.2})
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    budget, every = args.budget_minutes * 60, args.eval_every * 60
    spent, step, next_eval, wall = 0.0, 0, 0.0, time.perf_counter()
    curve = []
    while True:
        if spent >= next_eval:
            curve.append({"cpu_minutes": round(spent / 60, 3), "step": step,
                          "wall_minutes": round((time.perf_counter() - wall) / 60, 2),
                          **{name: round(score(model, items), 3) for name, items in sets.items()}})
            print(json.dumps(curve[-1]), file=sys.stderr, flush=True)
            next_eval += every
        if spent >= budget:
            break
        torch.manual_seed(step)  # batch k is the same for every candidate
        batch = [train[i] for i in range(args.batch_size)]
        mix = torch.stack([b["mix"] for b in batch])
        sources = torch.stack([b["sources"] for b in batch])
        start = time.process_time()
        loss = thresholded_mean(pit_si_snr_loss(model(mix), sources), -30.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        spent += time.process_time() - start
        step += 1
    report = {"candidate": args.worker, "config": config, "lr": lr,
              "parameters": sum(p.numel() for p in model.parameters()),
              "inference_cpu_s_per_audio_s": round(inference_cpu_per_second(model), 4),
              "steps": step, "curve": curve}
    print(json.dumps(report), flush=True)


def plot(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.loads(path.read_text())["results"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key, title in [(axes[0], "tts", "held-out TTS voices"),
                           (axes[1], "synth", "synth_mix test")]:
        for r in results:
            ax.plot([c["cpu_minutes"] for c in r["curve"]], [c[key] for c in r["curve"]],
                    marker="o", label=f"{r['candidate']} ({r['parameters'] / 1e6:.2f}M)")
        ax.set_title(f"SI-SNRi on {title}")
        ax.set_xlabel("training CPU-minutes")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("SI-SNRi (dB)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=90)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", help="speech pool folder (audionets prepare-tts-mix)")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--budget-minutes", type=float, default=6.0)
    parser.add_argument("--eval-every", type=float, default=1.5)
    parser.add_argument("--eval-count", type=int, default=64)
    parser.add_argument("--eval-seconds", type=float, default=4.0)
    parser.add_argument("--segment-seconds", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/train_budget.json"))
    parser.add_argument("--plot", type=Path, help="only draw the curves of this result file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plot:
        print(plot(args.plot))
        return
    if args.worker:
        worker(args)
        return
    results = []
    for name in args.candidates.split(","):
        command = [sys.executable, __file__, "--worker", name, *sys.argv[1:]]
        print(f"== {name}", flush=True)
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{name} failed (exit {done.returncode})")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        args.out.write_text(json.dumps({"settings": {k: v for k, v in vars(args).items()
                                                     if k not in ("worker", "plot", "out")},
                                        "torch": torch.__version__, "results": results},
                                       indent=1, default=str))
    print(plot(args.out))
    for r in results:
        last = r["curve"][-1]
        print(f"{r['candidate']:18s} {r['parameters'] / 1e6:6.2f}M  steps {r['steps']:5d}  "
              f"tts {last['tts']:6.2f} dB  synth {last['synth']:6.2f} dB  "
              f"inference {r['inference_cpu_s_per_audio_s']:.3f} CPU-s per audio-s")


if __name__ == "__main__":
    main()
