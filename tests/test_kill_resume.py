"""Checkpoints survive SIGKILL at any moment; unsafe checkpoint pickles are refused."""

from __future__ import annotations

import builtins
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from audionets.errors import CheckpointError
from audionets.serialization.checkpoints import load_checkpoint
from audionets.training import loading

RECIPE = Path(__file__).resolve().parents[1] / "recipes/toy/config.yaml"
FAST = ["trainer.device=cpu", "data.num_examples=4", "data.segment_seconds=0.25",
        "data.valid.num_examples=2", "trainer.test=false", "trainer.keep_best=1"]


def start(exp: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "audionets", "train", str(RECIPE), f"experiment_dir={exp}", *FAST,
         *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def wait_for_new_checkpoint(last: Path, proc: subprocess.Popen, after: float) -> None:
    deadline = time.monotonic() + 300
    while not (last.is_file() and last.stat().st_mtime > after):
        if proc.poll() is not None:
            pytest.fail(f"training exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no checkpoint within 300 s")
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_at_random_points_never_corrupts_last_pt(tmp_path):
    exp = tmp_path / "exp"
    last = exp / "checkpoints" / "last.pt"
    rng = random.Random(1234)
    resume: list[str] = []
    previous_mtime = 0.0
    for _ in range(3):
        proc = start(exp, "trainer.max_epochs=100000", *resume)
        wait_for_new_checkpoint(last, proc, previous_mtime)
        time.sleep(rng.uniform(0.0, 1.5))  # somewhere in a step, a validation or a save
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        state = torch.load(last, map_location="cpu", weights_only=True)
        assert state["epoch"] >= 1 and set(state["model"]) and "rng" in state
        previous_mtime = last.stat().st_mtime
        resume = ["--resume"]
    epoch = int(load_checkpoint(last)["epoch"])
    done = subprocess.run(
        [sys.executable, "-m", "audionets", "train", str(RECIPE), f"experiment_dir={exp}", *FAST,
         f"trainer.max_epochs={epoch + 1}", "--resume"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert load_checkpoint(last)["epoch"] == epoch + 1
    assert not list(last.parent.glob(".*.tmp"))  # stale temporary files were cleaned up


class Payload:
    """Unpickling this creates ``path`` (a stand-in for arbitrary code execution)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return builtins.open, (self.path, "w")


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_malicious_checkpoint_is_refused_without_running_code(tmp_path, writer):
    # the payload is live: plain unpickling runs it
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(Payload(probe))).close()
    assert probe.exists()

    marker = tmp_path / "pwned"
    exp = tmp_path / "exp"
    (exp / "checkpoints").mkdir(parents=True)
    last = exp / "checkpoints" / "last.pt"
    state = {"model": {}, "epoch": 1, "evil": Payload(marker)}
    if writer == "pickle":
        last.write_bytes(pickle.dumps(state, protocol=2))
    else:
        torch.save(state, last)

    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(last)
    from audionets.hub import load_model

    with pytest.raises(CheckpointError):
        load_model(last)
    from audionets.training.config import config_from_dict
    from audionets.training.trainer import Trainer

    config = config_from_dict({
        "task": "separation", "sample_rate": 8000, "experiment_dir": str(exp),
        "model": {"name": "sepformer", "encoder_channels": 8, "d_model": 8, "chunk_size": 10,
                  "num_blocks": 1, "intra_layers": 1, "inter_layers": 1, "nhead": 2, "d_ffn": 16},
        "data": {"name": "synth_mix", "segment_seconds": 0.25, "num_examples": 2},
        "trainer": {"device": "cpu"},
    })
    with pytest.raises(CheckpointError, match="refused to load"):
        Trainer(config, resume=True)
    assert not marker.exists()


@pytest.mark.slow
def test_sigterm_to_the_whole_process_group_with_workers_saves_and_resumes(tmp_path):
    """``pkill``, systemd and a terminal's Ctrl-C signal every process of the job, DataLoader
    workers included: the workers must leave the signal to the main process, which saves."""
    exp = tmp_path / "exp"
    last = exp / "checkpoints" / "last.pt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "audionets", "train", str(RECIPE), f"experiment_dir={exp}", *FAST,
         "trainer.max_epochs=100000", "trainer.num_workers=1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
    )
    wait_for_new_checkpoint(last, proc, 0.0)
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "Traceback" not in stderr
    assert "checkpoint saved" in stderr
    assert torch.load(last, map_location="cpu", weights_only=True)["step"] > 0


class _WorkerSignalState(torch.utils.data.Dataset):
    """Each item: is SIGTERM ignored, and is it still blocked, inside the worker."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> torch.Tensor:
        blocked = signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, [])
        return torch.tensor([signal.getsignal(signal.SIGTERM) == signal.SIG_IGN, blocked])


def _signalled_at_birth(worker_id: int) -> None:
    """A group-wide SIGTERM that reaches a worker before ``init_worker`` has run."""
    os.kill(os.getpid(), signal.SIGTERM)
    loading.init_worker(worker_id)


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_a_worker_signalled_before_its_init_survives_and_ends_up_ignoring_the_signal():
    """The window between a worker's fork and its ``worker_init_fn`` (where CI once lost a worker
    to ``pkill``): the signal waits, blocked, and is discarded once the worker ignores it."""
    loader = torch.utils.data.DataLoader(_WorkerSignalState(), batch_size=1, num_workers=1,
                                         worker_init_fn=_signalled_at_birth)
    states = torch.cat(list(loading.iterate(loader)))
    assert states.tolist() == [[True, False], [True, False]]
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # main: unblocked
