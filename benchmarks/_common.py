"""What the SepFormer benchmarks share: runtime options, the published model as a SpeechBrain
folder, peak memory, and fresh worker subprocesses (so that each peak memory is its own).

A benchmark script is its own worker: the parent builds the inputs, then runs
``python SCRIPT --worker VARIANT ...`` once per variant with :func:`run_worker`, which passes the
runtime options on and reads the worker's report, the last line of its stdout, as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch

#: The published WSJ0-2mix SepFormer (also the defaults of audionets' ``sepformer``).
PUBLISHED = dict(encoder_channels=256, d_model=256, chunk_size=250, num_blocks=2, intra_layers=8,
                 inter_layers=8, nhead=8, d_ffn=1024)


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """``--threads``, ``--omp-wait-policy``, ``--device`` and ``--precision``."""
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument(
        "--omp-wait-policy", choices=["PASSIVE", "ACTIVE", "default"], default="PASSIVE",
        help="OMP_WAIT_POLICY of the workers; PASSIVE stops idle OpenMP threads from spinning, "
             "which on a shared, loaded machine makes every model ~2x faster and the timings "
             "repeatable (default: %(default)s)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: run the forward under torch.autocast(bfloat16)")


def runtime_argv(args: argparse.Namespace) -> list[str]:
    """The runtime options of ``args`` as command-line arguments for a worker."""
    return ["--threads", str(args.threads), "--omp-wait-policy", args.omp_wait_policy,
            "--device", args.device, "--precision", args.precision]


def describe(args: argparse.Namespace) -> str:
    """One line naming the runtime: torch, device, precision, threads."""
    where = (torch.cuda.get_device_name() if args.device == "cuda" and torch.cuda.is_available()
             else f"CPU, {args.threads} threads, OMP_WAIT_POLICY={args.omp_wait_policy}")
    return f"torch {torch.__version__}, {where}, {args.precision}"


def setup_worker(args: argparse.Namespace) -> torch.device:
    """Fix the thread count and check the device in a worker; returns the device."""
    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is available here")
    return torch.device(args.device)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to bfloat16 for ``precision == "bf16"``, else nothing."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a wall-clock time covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_mib(field: str) -> float | None:
    """A memory field of /proc/self/status (Linux) in MiB, or None elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def peak_memory_mib(device: torch.device) -> float:
    """Peak CUDA memory allocated on ``device``, or the process's peak RSS on CPU (MiB), since
    the start or the last :func:`reset_peak_memory`."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    hwm = _status_mib("VmHWM")  # Linux: reset by reset_peak_memory
    if hwm is not None:
        return hwm
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # lifetime peak


def reset_peak_memory(device: torch.device) -> float:
    """Memory in use now (MiB: CUDA allocated, or RSS on CPU), made the new peak: what
    :func:`peak_memory_mib` reports afterwards is the peak from here on. Where the peak cannot
    be reset (CPU outside Linux) the lifetime peak is returned, as before."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    try:  # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return peak_memory_mib(device)
    return _status_mib("VmRSS") or peak_memory_mib(device)


def memory_label(args: argparse.Namespace) -> str:
    return "peak CUDA MiB" if args.device == "cuda" else "peak RSS MiB"


def build_published_folder(folder: Path, seed: int) -> None:
    """A published-architecture SepFormer with random weights, saved as a SpeechBrain folder
    (``hyperparams.yaml`` + ``encoder/masknet/decoder.ckpt``) that both implementations load."""
    from audionets.interop.speechbrain import save_sepformer_folder
    from audionets.models.sepformer import SepFormer

    torch.manual_seed(seed)
    save_sepformer_folder(SepFormer(**PUBLISHED).eval(), folder)


def run_worker(script: str, variant: str, worker_argv: list[str],
               args: argparse.Namespace) -> dict:
    """Run ``python script --worker variant ...`` in a fresh interpreter; its JSON report."""
    command = [sys.executable, script, "--worker", variant, *worker_argv, *runtime_argv(args)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONWARNINGS="ignore")
    if args.omp_wait_policy != "default":
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise SystemExit(f"{variant} worker failed (exit {result.returncode}):\n"
                         f"{result.stderr[-3000:]}")
    return json.loads(lines[-1])


def run_rounds(script: str, variants: list[str] | tuple[str, ...], folder: Path, seconds: float,
               args: argparse.Namespace, extra_argv: tuple[str, ...] = (),
               ) -> tuple[dict[str, dict], dict[str, float]]:
    """Run each variant's worker ``args.rounds`` times in turn (interleaved, so a change in the
    machine's load hits all alike) on a ``seconds`` long input; ``extra_argv`` goes to every
    worker. Returns each variant's last report, with its saved ``"output"`` tensor, and its
    median over all timed calls."""
    reports: dict[str, dict] = {}
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for variant in variants:
            output = folder / f"out-{variant}-{seconds}.pt"
            reports[variant] = run_worker(script, variant, [
                "--folder", str(folder), "--seconds", str(seconds), "--output", str(output),
                "--warmup", str(args.warmup), "--runs", str(args.runs), *extra_argv,
            ], args)
            reports[variant]["output"] = torch.load(output, weights_only=True)
            times[variant] += reports[variant]["times"]
    return reports, {v: statistics.median(times[v]) for v in variants}


def si_snr_db(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean SI-SNR (dB) of ``[B, T, S]`` outputs against ``[B, T, S]`` references."""
    from audionets.metrics import si_snr

    return si_snr(estimate.transpose(-1, -2), reference.transpose(-1, -2)).mean().item()
