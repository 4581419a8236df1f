"""DDP through torchrun on CPU (gloo): 2 processes x batch 4 == 1 process x batch 8."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from audionets.serialization.checkpoints import load_checkpoint, save_checkpoint
from audionets.training.metrics_log import read_metrics

RECIPE = Path(__file__).resolve().parents[1] / "recipes/toy/config.yaml"
# SGD: the update is linear in the gradient, so float summation-order noise stays tiny (Adam
# would blow up the noise of near-zero gradients)
# 5 validation items on 2 processes: the sampler pads rank 1 with a repeat of item 0, which
# must not count
COMMON = ["trainer.device=cpu", "trainer.max_epochs=2", "data.num_examples=8",
          "data.segment_seconds=0.25", "data.valid.num_examples=5", "data.test.num_examples=2",
          "trainer.keep_best=1", "optimizer.name=sgd", "optimizer.momentum=0.0",
          "optimizer.lr=0.01"]


# With garbage collection off, anything train() leaves to the collector stays visible. A DDP
# wrapper left to it keeps the gloo process group alive until interpreter exit, and a group
# freed during finalization aborts the process (SIGABRT) about one run in twenty.
RELEASE_CHECK = """
import gc, sys
gc.disable()
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from audionets.errors import CheckpointError
from audionets.training.config import load_config
from audionets.training.trainer import train
if sys.argv[1] == "--resume-corrupt":  # fails after the DDP wrapper is built
    try:
        train(load_config(sys.argv[2], sys.argv[3:]), resume=True)
    except CheckpointError:
        pass
    else:
        raise AssertionError("resuming from a corrupt checkpoint did not fail")
else:
    train(load_config(sys.argv[1], sys.argv[2:]))
assert not dist.is_initialized(), "train() left the process group joined"
alive = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
assert alive == 0, f"{alive} DDP wrapper(s) outlived train()"
print("released")
"""


def run(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process_with_the_total_batch(tmp_path):
    # `python -m torch.distributed.run` is the `torchrun` command, found without PATH
    ddp = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "audionets", "train", str(RECIPE), f"experiment_dir={tmp_path / 'ddp'}", "trainer.batch_size=4", *COMMON])
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = run([sys.executable, "-m", "audionets", "train", str(RECIPE),
                  f"experiment_dir={tmp_path / 'single'}", "trainer.batch_size=8", *COMMON])
    assert single.returncode == 0, single.stderr[-3000:]

    a = load_checkpoint(tmp_path / "ddp/checkpoints/last.pt")
    b = load_checkpoint(tmp_path / "single/checkpoints/last.pt")
    assert a["step"] == b["step"] == 2  # 8 items / (2 x 4) per step, 2 epochs
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-4, atol=1e-6)
    rows_a = read_metrics(tmp_path / "ddp/metrics.csv")
    rows_b = read_metrics(tmp_path / "single/metrics.csv")
    assert len(rows_a) == 2
    for ra, rb in zip(rows_a, rows_b):  # all-reduced metrics cover every item once
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], abs=1e-4)
        assert ra["valid_si_snri"] == pytest.approx(rb["valid_si_snri"], abs=1e-4)
    test = json.loads((tmp_path / "ddp/test_metrics.json").read_text())
    alone = json.loads((tmp_path / "single/test_metrics.json").read_text())
    # rank 0 tests alone, on every test item (not on its shard of them)
    assert test["test_si_snri"] == pytest.approx(alone["test_si_snri"], abs=1e-3)
    # only rank 0 wrote: one set of files, one best checkpoint
    assert len(list((tmp_path / "ddp/checkpoints").glob("best-*.pt"))) == 1
    assert "[rank 1]" not in ddp.stdout


@pytest.mark.slow
@pytest.mark.parametrize("failing", [False, True], ids=["completed", "failed"])
def test_train_releases_the_process_group_before_returning(tmp_path, failing):
    script = tmp_path / "release_check.py"
    script.write_text(RELEASE_CHECK)
    exp = tmp_path / "ddp"
    args = [str(RECIPE), f"experiment_dir={exp}", "trainer.batch_size=4", "trainer.test=false",
            *COMMON]
    if failing:
        (exp / "checkpoints").mkdir(parents=True)
        (exp / "checkpoints/last.pt").write_bytes(b"not a checkpoint")
        args = ["--resume-corrupt", *args]
    ddp = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(script), *args])
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("released") == 2


@pytest.mark.slow
def test_resume_with_no_batch_left_in_the_epoch(tmp_path):
    # A run stopped while validating resumes into an epoch with no batch left: rank 0 holds
    # the epoch's saved train sums, rank 1 none. Both must still reduce the same tensor (a
    # mismatch aborts gloo and hangs NCCL).
    exp = tmp_path / "ddp"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2", "-m", "audionets", "train", str(RECIPE),
                f"experiment_dir={exp}", "trainer.batch_size=4", "trainer.test=false", *COMMON,
                "trainer.max_epochs=1"]
    first = run(torchrun)
    assert first.returncode == 0, first.stderr[-3000:]
    # what a stop during epoch 1's validation saves: its one batch done, its train sums kept
    state = load_checkpoint(exp / "checkpoints/last.pt")
    state.update(epoch=0, batch_in_epoch=1, train_partial={
        "loss": -8.0, "si_snr": 8.0, "si_snri": 4.0, "_count": 8.0})
    save_checkpoint(state, exp / "checkpoints/last.pt")
    resumed = run(torchrun + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = read_metrics(exp / "metrics.csv")
    assert len(rows) == 1 and rows[0]["epoch"] == 1
    assert rows[0]["train_loss"] == pytest.approx(-1.0)
    assert rows[0]["train_si_snri"] == pytest.approx(0.5)
