"""Long-file separation: time and peak memory of ``Separator.separate_file`` vs. SpeechBrain.

Separates synthetic 8 kHz recordings of increasing length with the published SepFormer
architecture (random weights: speed and memory do not depend on the values) and checks

* peak resident memory (RSS) of the whole process stays under 2 GB for every length, and
* time grows linearly: the 10-minute file takes at most 11x the 1-minute file.

It also runs SpeechBrain's own whole-file path (its ``Encoder`` / ``Dual_Path_Model`` /
``Decoder`` with the same hyperparameters on the whole input, as ``separate_file`` of its
``SepformerSeparation`` does) and prints its time and memory, or the error it raises (its
positional encoding ends at 2500 chunks, about 5.2 minutes at 8 kHz). SpeechBrain runs under
an address-space cap (``--sb-memory-gb``) so that it fails instead of exhausting the machine.

Every measurement runs in a fresh subprocess, so each peak RSS is its own.

    python benchmarks/long_file.py              # 1 min and 10 min, published architecture
    python benchmarks/long_file.py --quick      # small architecture, 12 s and 120 s (smoke run)
    python benchmarks/long_file.py --quick --hours 2   # + a 2-hour file (ours only)
    python benchmarks/long_file.py --quality sepformer-synth-2spk   # chunking vs one pass

``--quality MODEL`` instead measures what chunking costs in separation quality: on a
60-second synth_mix test mixture of the same two talkers throughout, SI-SNRi of one forward
pass over the whole mixture vs. ``separate_file`` with 10 s, 4 s and 2 s chunks (one global
permutation for the whole file, so a speaker jumping between outputs lowers the score), and
the share of 1-second windows whose best local assignment differs from the global one.

Cost: the published architecture needs about 1 s of compute per second of audio on 2 idle
cores, so the full run (1 + 10 minutes of audio) takes about 12 minutes there, and
``--hours 2`` with it over two hours: use ``--quick --hours 2`` for the
bounded-memory check of very long files (about 7 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import PUBLISHED, peak_memory_mib

RATE = 8000
#: A small architecture for smoke runs (same structure, far fewer layers and channels).
QUICK = dict(encoder_channels=64, d_model=64, chunk_size=250, num_blocks=1, intra_layers=1,
             inter_layers=1, nhead=4, d_ffn=128)
RSS_LIMIT_MB = 2048
TIME_RATIO_LIMIT = 11.0


def write_input(path: Path, seconds: float, block_seconds: float = 60.0) -> None:
    """Write ``seconds`` of a two-'talker' 8 kHz test signal block by block (bounded memory)."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    total = int(seconds * RATE)
    block = int(block_seconds * RATE)
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=1, subtype="PCM_16") as out:
        for start in range(0, total, block):
            t = np.arange(start, min(start + block, total)) / RATE
            a = np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3.1 * t))
            b = np.sin(2 * np.pi * 1100 * t) * (0.5 + 0.5 * np.cos(2 * np.pi * 4.7 * t))
            noise = 0.05 * rng.standard_normal(t.shape)
            out.write((0.3 * (a + b) + noise).astype(np.float32))


def peak_rss_mb() -> float:
    return peak_memory_mib(torch.device("cpu"))


def worker_ours(path: Path, arch: dict, chunk_seconds: float) -> dict:
    import soundfile as sf

    import audionets.models  # noqa: F401
    from audionets.inference import Separator
    from audionets.nn.prepack import prepack_linear_layers
    from audionets.registry import MODELS

    torch.manual_seed(0)  # as Separator.from_pretrained on CPU: pre-packed linear layers
    separator = Separator(prepack_linear_layers(MODELS.build("sepformer", **arch)), RATE)
    base = peak_rss_mb()
    out_dir = Path(tempfile.mkdtemp(prefix="long_file_out_"))
    start = time.perf_counter()
    outputs = separator.separate_file(path, out_dir=out_dir, chunk_seconds=chunk_seconds,
                                      progress=False)
    seconds = time.perf_counter() - start
    frames = [sf.info(str(p)).frames for p in outputs]
    for p in outputs:
        p.unlink()
    out_dir.rmdir()
    return {"time_s": seconds, "peak_rss_mb": peak_rss_mb(), "rss_after_model_mb": base,
            "output_frames": frames, "input_frames": sf.info(str(path)).frames}


def worker_speechbrain(path: Path, arch: dict, memory_gb: float) -> dict:
    import resource

    limit = int(memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import soundfile as sf
    from speechbrain.lobes.models.dual_path import (
        Decoder, Dual_Path_Model, Encoder, SBTransformerBlock,
    )

    from audionets.errors import first_line

    torch.manual_seed(0)
    channels = arch["encoder_channels"]

    def block(layers: int) -> SBTransformerBlock:
        return SBTransformerBlock(num_layers=layers, d_model=arch["d_model"], nhead=arch["nhead"],
                                  d_ffn=arch["d_ffn"], dropout=0.0, use_positional_encoding=True,
                                  norm_before=True)

    encoder = Encoder(kernel_size=16, out_channels=channels).eval()
    masknet = Dual_Path_Model(
        num_spks=2, in_channels=channels, out_channels=arch["d_model"],
        num_layers=arch["num_blocks"], K=arch["chunk_size"],
        intra_model=block(arch["intra_layers"]), inter_model=block(arch["inter_layers"]),
        norm="ln", linear_layer_after_inter_intra=False, skip_around_intra=True,
    ).eval()
    decoder = Decoder(in_channels=channels, out_channels=1, kernel_size=16, stride=8,
                      bias=False).eval()
    base = peak_rss_mb()
    wav = torch.from_numpy(sf.read(str(path), dtype="float32")[0])[None]
    start = time.perf_counter()
    try:
        with torch.inference_mode():  # SepformerSeparation.separate_batch, whole input
            feats = encoder(wav)
            masks = masknet(feats)
            est = torch.cat([decoder(feats * m).unsqueeze(-1) for m in masks], dim=-1)
        result = {"ok": True, "output_shape": list(est.shape)}
    except (RuntimeError, MemoryError, ValueError) as err:
        result = {"ok": False, "error": f"{type(err).__name__}: {first_line(err, 200)}"}
    result.update(time_s=time.perf_counter() - start, peak_rss_mb=peak_rss_mb(),
                  rss_after_model_mb=base)
    return result


def quality(model: str, seconds: float, chunk_list: list[float]) -> None:
    """Print SI-SNRi of whole-file vs. chunked separation of one long test mixture."""
    import soundfile as sf

    import audionets.data  # noqa: F401  (registers the datasets)
    from audionets import metrics
    from audionets.inference import Separator
    from audionets.registry import DATASETS

    separator = Separator.from_pretrained(model)
    rate = separator.sample_rate
    item = DATASETS.build("synth_mix", split="test", sample_rate=rate, segment_seconds=seconds,
                          num_speakers=separator.num_sources)[0]
    mix, refs = item["mix"], item["sources"]

    def report(name: str, est: torch.Tensor) -> None:  # est [S, T]
        _, perm = metrics.pit(metrics.pairwise_neg_si_snr, est[None], refs[None])
        est = metrics.reorder(est[None], perm)[0]
        sisnri = float(metrics.si_snr_improvement(est, refs, mix).mean())
        window = rate
        jumps = total = 0
        for start in range(0, mix.shape[-1] - window + 1, window):
            part = slice(start, start + window)
            if refs[:, part].abs().amax(-1).min() == 0:
                continue  # a talker is silent here: no assignment to check
            _, local = metrics.pit(metrics.pairwise_neg_si_snr, est[None, :, part],
                                   refs[None, :, part])
            jumps += int(not torch.equal(local[0], torch.arange(refs.shape[0])))
            total += 1
        print(f"{name:>18}: SI-SNRi {sisnri:6.2f} dB   windows assigned to another output: "
              f"{jumps}/{total}")

    print(f"{model}: {item['id']}, {seconds:g} s at {rate} Hz")
    start = time.perf_counter()
    report("one pass", separator.separate_batch(mix[None])[0].T)
    print(f"{'':>18}  ({time.perf_counter() - start:.1f} s)")
    with tempfile.TemporaryDirectory(prefix="long_file_quality_") as tmp:
        path = Path(tmp) / "mix.wav"
        sf.write(str(path), mix.numpy(), rate, subtype="FLOAT")
        for chunk in chunk_list:
            start = time.perf_counter()
            outputs = separator.separate_file(path, out_dir=Path(tmp) / f"c{chunk:g}",
                                              chunk_seconds=chunk, overlap_seconds=chunk / 8,
                                              progress=False)
            est = torch.stack([torch.from_numpy(sf.read(str(p), dtype="float32")[0])
                               for p in outputs])
            report(f"{chunk:g} s chunks", est)
            print(f"{'':>18}  ({time.perf_counter() - start:.1f} s)")


def measure(kind: str, path: Path, args: argparse.Namespace) -> dict:
    """Run one worker in a fresh interpreter; its JSON report (or its failure)."""
    command = [sys.executable, __file__, "--worker", kind, "--file", str(path),
               "--chunk-seconds", str(args.chunk_seconds), "--sb-memory-gb", str(args.sb_memory_gb)]
    if args.quick:
        command.append("--quick")
    if args.threads:
        command += ["--threads", str(args.threads)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"ok": False, "error": f"exit {proc.returncode}: {tail[:200]}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small architecture, 12 s and 120 s files (smoke run)")
    parser.add_argument("--hours", type=float, default=None,
                        help="also separate a file of this many hours (ours only)")
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    parser.add_argument("--sb-memory-gb", type=float, default=8.0,
                        help="address-space cap of the SpeechBrain worker (default: 8)")
    parser.add_argument("--no-speechbrain", action="store_true")
    parser.add_argument("--timeout", type=float, default=7200.0, help="per worker, seconds")
    parser.add_argument("--quality", metavar="MODEL", default=None,
                        help="measure chunked vs. one-pass quality with this model instead")
    parser.add_argument("--quality-seconds", type=float, default=60.0)
    parser.add_argument("--worker", choices=["ours", "speechbrain"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    arch = QUICK if args.quick else PUBLISHED
    if args.quality:
        quality(args.quality, args.quality_seconds, [10.0, 4.0, 2.0])
        return 0

    if args.worker:
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.worker == "ours":
            report = worker_ours(args.file, arch, args.chunk_seconds)
        else:
            report = worker_speechbrain(args.file, arch, args.sb_memory_gb)
        print(json.dumps(report))
        return 0

    short, long = (12.0, 120.0) if args.quick else (60.0, 600.0)
    lengths = [short, long] + ([args.hours * 3600] if args.hours else [])
    print(f"architecture: {'quick' if args.quick else 'published SepFormer'} {arch}")
    print(f"chunks of {args.chunk_seconds} s, 8 kHz, torch threads: {args.threads or 'default'}")
    results: dict[float, dict] = {}
    with tempfile.TemporaryDirectory(prefix="long_file_") as tmp:
        for seconds in lengths:
            path = Path(tmp) / f"input_{int(seconds)}s.wav"
            write_input(path, seconds)
            ours = measure("ours", path, args)
            results[seconds] = ours
            if ours.get("error"):
                print(f"{seconds / 60:7.1f} min  audionets   FAILED {ours['error']}")
            else:
                same = all(f == ours["input_frames"] for f in ours["output_frames"])
                print(f"{seconds / 60:7.1f} min  audionets   {ours['time_s']:8.1f} s  "
                      f"peak RSS {ours['peak_rss_mb']:7.0f} MB  "
                      f"(after model build {ours['rss_after_model_mb']:.0f} MB)  "
                      f"output length == input: {same}")
            if not args.no_speechbrain and seconds <= long:
                sb = measure("speechbrain", path, args)
                status = "ok" if sb.get("ok") else f"FAILED {sb.get('error')}"
                timing = (f"{sb['time_s']:8.1f} s  peak RSS {sb['peak_rss_mb']:7.0f} MB  "
                          if "time_s" in sb else "")
                print(f"{seconds / 60:7.1f} min  speechbrain {timing}{status}")
            path.unlink()

    ok = all("error" not in r and r["peak_rss_mb"] < RSS_LIMIT_MB for r in results.values())
    ratio = (results[long]["time_s"] / results[short]["time_s"]
             if all("time_s" in results[s] for s in (short, long)) else float("inf"))
    print(f"peak RSS < {RSS_LIMIT_MB} MB for every length: {ok}")
    print(f"time ratio {long / 60:g} min / {short / 60:g} min: {ratio:.2f} "
          f"(limit {TIME_RATIO_LIMIT}): {ratio <= TIME_RATIO_LIMIT}")
    return 0 if ok and ratio <= TIME_RATIO_LIMIT else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
