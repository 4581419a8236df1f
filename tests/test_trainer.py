"""The trainer on tiny in-test components: outputs, max_steps, accumulation, signals, tasks."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from audionets.errors import CheckpointError, ConfigError, OutputError
from audionets.registry import DATASETS, MODELS
from audionets.hub import load_model
from audionets.serialization.checkpoints import find_best_checkpoint, load_checkpoint
from audionets.tasks import ClassificationTask, ReconstructionTask, SeparationTask, build_task
from audionets.training.config import config_from_dict, load_config
from audionets.training.metrics_log import read_metrics
from audionets.training.trainer import Trainer, _cosine_factor, train

SAMPLES = 64


@DATASETS.register("test_trainer_tones")
class Tones(torch.utils.data.Dataset):
    """Two classes: noise with a negative or a positive offset; train items get fresh noise.
    ``mislabel_every`` N: every Nth item is labelled with the other class (noisy labels)."""

    labels = ["minus", "plus"]

    def __init__(self, split: str = "train", sample_rate: int = 8000, num_examples: int = 24,
                 segment_seconds: float | None = None, mislabel_every: int = 0) -> None:
        self.split, self.num_examples, self.mislabel_every = split, num_examples, mislabel_every
        self.offset = {"train": 0, "valid": 1000, "test": 2000}[split]

    def __len__(self) -> int:
        return self.num_examples

    def __getitem__(self, index: int) -> dict:
        gen = torch.Generator().manual_seed(self.offset + index)
        label = index % 2
        wav = 0.3 * torch.randn(SAMPLES, generator=gen) + (0.2 if label else -0.2)
        if self.split == "train":  # uses the global RNG, which a resumed run must restore
            wav = wav + 0.05 * torch.randn(SAMPLES)
        if self.mislabel_every and index % self.mislabel_every == 0:
            label = 1 - label
        return {"wav": wav, "label": torch.tensor(label), "id": f"{self.split}-{index}"}


@MODELS.register("test_trainer_net")
class TinyNet(nn.Module):
    """``wav[B, T] -> logits[B, C]`` from the mean and std of the waveform."""

    def __init__(self, num_classes: int, sample_rate: int, hidden: int = 8,
                 dropout: float = 0.0, kill_at_call: int | None = None,
                 nan_at_call: int | None = None, kill_at_eval_call: int | None = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Dropout(dropout),
                                 nn.Linear(hidden, num_classes))
        self.kill_at_call, self.nan_at_call, self.calls = kill_at_call, nan_at_call, 0
        self.kill_at_eval_call, self.eval_calls = kill_at_eval_call, 0

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        self.calls += self.training
        self.eval_calls += not self.training
        if (self.training and self.calls == self.kill_at_call) or (
                not self.training and self.eval_calls == self.kill_at_eval_call):
            os.kill(os.getpid(), signal.SIGTERM)  # as if the job scheduler stopped us
        logits = self.net(torch.stack([wav.mean(-1), wav.std(-1)], dim=-1) * 3)
        if self.training and self.calls == self.nan_at_call:
            logits = logits * float("nan")
        return logits


def make_config(tmp_path: Path, *overrides: str, name: str = "run"):
    raw = {
        "task": "classification", "experiment_dir": str(tmp_path / name), "seed": 3,
        "sample_rate": 8000,
        "model": {"name": "test_trainer_net"},
        "data": {"name": "test_trainer_tones", "valid": {"num_examples": 8},
                 "test": {"num_examples": 6}},
        "optimizer": {"name": "adam", "lr": 0.05},
        "trainer": {"max_epochs": 3, "batch_size": 4, "device": "cpu", "keep_best": 2},
    }
    return config_from_dict(raw, list(overrides))


def test_training_writes_the_experiment_folder(tmp_path):
    result = train(make_config(tmp_path, "trainer.max_epochs=4"))
    exp = tmp_path / "run"
    assert result.status == "completed" and result.epoch == 4 and result.step == 4 * 6
    rows = read_metrics(exp / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert {"train_loss", "train_accuracy", "valid_loss", "valid_accuracy", "lr"} <= set(rows[0])
    assert rows[-1]["valid_loss"] < rows[0]["valid_loss"]
    assert rows[-1]["valid_accuracy"] >= 0.75  # the classes are separable by the mean
    assert (exp / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = sorted((exp / "checkpoints").glob("best-*.pt"))
    assert 1 <= len(best) <= 2
    # the resolved config rebuilds the model: labels and num_classes were filled in from the data
    saved = load_config(exp / "config.yaml")
    assert saved.labels == ["minus", "plus"] and saved.model["num_classes"] == 2
    assert saved.model["sample_rate"] == 8000
    last = load_checkpoint(exp / "checkpoints" / "last.pt")
    assert last["epoch"] == 4 and last["step"] == 24 and last["batch_in_epoch"] == 0
    assert last["labels"] == ["minus", "plus"] and last["config"] == saved.to_dict()
    model, meta = load_model(exp)  # the experiment folder is a model folder
    assert meta.labels == ["minus", "plus"] and meta.task == "classification"
    assert Path(meta.source).parent == exp / "checkpoints"  # names the checkpoint it chose
    test = json.loads((exp / "test_metrics.json").read_text())
    assert set(test) == {"test_loss", "test_accuracy", "checkpoint"}
    assert Path(test["checkpoint"]).name.startswith("best-")
    assert test["test_accuracy"] == pytest.approx(result.test_metrics["test_accuracy"])


def test_one_se_rule_tests_the_latest_checkpoint_within_a_standard_error(tmp_path, caplog):
    # noisy validation labels: the loss falls, then rises as the model grows sure of the
    # mislabelled quarter, and its per-item values spread widely
    with caplog.at_level("INFO", logger="audionets.train"):
        result = train(make_config(tmp_path, "trainer.max_epochs=8", "trainer.keep_best=1",
                                   "trainer.monitor=valid_loss", "optimizer.lr=0.01",
                                   "trainer.checkpoint_rule=one_se",
                                   "data.valid.mislabel_every=4"))
    exp = tmp_path / "run"
    losses = [row["valid_loss"] for row in read_metrics(exp / "metrics.csv")]
    entries = load_checkpoint(exp / "checkpoints" / "last.pt")["best"]
    top = min(entries, key=lambda e: e["value"])
    assert top["value"] == pytest.approx(min(losses))
    # its standard error, from the per-item losses of its weights on the valid split
    model, _ = load_model(exp / "checkpoints" / top["path"])
    valid = Tones("valid", num_examples=8, mislabel_every=4)
    items = [valid[i] for i in range(8)]
    with torch.no_grad():
        logits = model(torch.stack([item["wav"] for item in items]))
    per_item = nn.functional.cross_entropy(
        logits, torch.stack([item["label"] for item in items]), reduction="none").numpy()
    assert top["se"] == pytest.approx(per_item.std(ddof=1) / np.sqrt(8), rel=1e-4)
    chosen = max(epoch for epoch, loss in enumerate(losses, start=1)
                 if loss <= top["value"] + top["se"])
    assert chosen > losses.index(min(losses)) + 1  # not the best value's checkpoint
    test = json.loads((exp / "test_metrics.json").read_text())
    for path in (result.best_checkpoint, find_best_checkpoint(exp / "checkpoints"),
                 Path(test["checkpoint"])):
        assert path.name.startswith(f"best-epoch{chosen:03d}-")
    assert (f"chosen, within one standard error of the best ({top['value']:.4f}) "
            f"valid_loss={losses[chosen - 1]:.4f}") in caplog.text


def test_test_accuracy_matches_an_independent_count(tmp_path):
    result = train(make_config(tmp_path, "trainer.max_epochs=2", "trainer.keep_best=0"))
    model = MODELS.build("test_trainer_net", num_classes=2, sample_rate=8000)
    model.load_state_dict(load_checkpoint(tmp_path / "run/checkpoints/last.pt")["model"])
    model.eval()
    data = Tones("test", num_examples=6)
    correct = [int(model(data[i]["wav"][None]).argmax()) == data[i]["label"] for i in range(6)]
    assert result.test_metrics["test_accuracy"] == pytest.approx(np.mean(correct))


def test_max_steps_stops_mid_epoch_and_saves(tmp_path):
    result = train(make_config(tmp_path, "trainer.max_steps=4"))
    assert result.status == "max_steps" and result.step == 4 and result.epoch == 0
    state = load_checkpoint(tmp_path / "run/checkpoints/last.pt")
    assert state["step"] == 4 and state["epoch"] == 0 and state["batch_in_epoch"] == 4
    rows = read_metrics(tmp_path / "run/metrics.csv")
    assert len(rows) == 1 and rows[0]["step"] == 4
    assert (tmp_path / "run/test_metrics.json").is_file()


def test_a_non_finite_loss_skips_the_update(tmp_path):
    train(make_config(tmp_path, "trainer.max_steps=2", "trainer.test=false", name="ref"))
    train(make_config(tmp_path, "trainer.max_steps=3", "trainer.test=false", "model.nan_at_call=3",
                      name="nan"))
    ref = load_checkpoint(tmp_path / "ref/checkpoints/last.pt")["model"]
    nan = load_checkpoint(tmp_path / "nan/checkpoints/last.pt")["model"]
    for key in ref:  # step 3 saw NaN gradients and left the weights of step 2 alone
        assert torch.equal(ref[key], nan[key])


def test_limit_batches(tmp_path):
    result = train(make_config(tmp_path, "trainer.max_epochs=2", "trainer.limit_train_batches=2",
                               "trainer.test=false"))
    assert result.step == 4
    assert not (tmp_path / "run/test_metrics.json").exists()


def test_gradient_accumulation_matches_a_bigger_batch(tmp_path):
    common = ("trainer.max_epochs=1", "optimizer.name=sgd", "optimizer.momentum=0.0",
              "trainer.grad_clip=null", "trainer.test=false", "data.num_examples=16")
    small = train(make_config(tmp_path, *common, "trainer.batch_size=4", "trainer.accumulate=2",
                              name="acc"))
    big = train(make_config(tmp_path, *common, "trainer.batch_size=8", name="big"))
    assert small.step == big.step == 2
    a = load_checkpoint(tmp_path / "acc/checkpoints/last.pt")["model"]
    b = load_checkpoint(tmp_path / "big/checkpoints/last.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_sigterm_saves_and_resume_matches_an_uninterrupted_run(tmp_path):
    common = ("trainer.max_epochs=2", "trainer.test=false", "model.dropout=0.2")
    train(make_config(tmp_path, *common, name="straight"))
    stopped = train(make_config(tmp_path, *common, "model.kill_at_call=8", name="killed"))
    assert stopped.status == "interrupted" and stopped.signum == signal.SIGTERM
    assert stopped.step == 8 and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    state = load_checkpoint(tmp_path / "killed/checkpoints/last.pt")
    assert (state["epoch"], state["batch_in_epoch"]) == (1, 2)
    finished = train(make_config(tmp_path, *common, name="killed"), resume=True)
    assert finished.status == "completed" and finished.step == 12
    a = load_checkpoint(tmp_path / "straight/checkpoints/last.pt")
    b = load_checkpoint(tmp_path / "killed/checkpoints/last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    rows = read_metrics(tmp_path / "killed/metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2]


def test_the_long_schedule_resumed_after_sigterm_is_the_uninterrupted_run(tmp_path):
    """How the shipped separator trains across sessions: warm-up + cosine over a fixed
    max_steps, max_epochs out of the way, stopped mid-epoch by the machine and resumed."""
    common = ("trainer.max_epochs=100", "trainer.max_steps=20", "scheduler.name=cosine",
              "scheduler.warmup_steps=4", "scheduler.min_lr=0.001", "trainer.test=false",
              "model.dropout=0.2")
    straight = train(make_config(tmp_path, *common, name="straight"))
    assert straight.status == "max_steps" and straight.step == 20
    stopped = train(make_config(tmp_path, *common, "model.kill_at_call=9", name="killed"))
    assert stopped.status == "interrupted" and stopped.step == 9
    finished = train(make_config(tmp_path, *common, name="killed"), resume=True)
    assert finished.status == "max_steps" and finished.step == 20
    a = load_checkpoint(tmp_path / "straight/checkpoints/last.pt")
    b = load_checkpoint(tmp_path / "killed/checkpoints/last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    rows_a = read_metrics(tmp_path / "straight/metrics.csv")
    rows_b = read_metrics(tmp_path / "killed/metrics.csv")
    assert [r["lr"] for r in rows_a] == [r["lr"] for r in rows_b]
    # epoch 1 ends after step 6: 2 of the 16 decay steps done
    assert rows_b[0]["lr"] == pytest.approx(0.001 + 0.049 * (1 + math.cos(math.pi * 2 / 16)) / 2,
                                       rel=1e-5)  # (metrics.csv keeps 6 significant digits)
    assert rows_b[-1]["lr"] == pytest.approx(0.001)  # the decay ends at max_steps


@pytest.mark.parametrize("kill", ["model.kill_at_eval_call=1", "model.kill_at_call=6"])
def test_sigterm_in_validation_or_at_an_epoch_end(tmp_path, kill):
    """Stopped in epoch 1's validation (or at its last step): resume re-validates, same run."""
    common = ("trainer.max_epochs=2", "trainer.test=false", "model.dropout=0.2")
    train(make_config(tmp_path, *common, name="straight"))
    stopped = train(make_config(tmp_path, *common, kill, name="killed"))
    assert stopped.status == "interrupted" and stopped.step == 6 and stopped.epoch == 0
    state = load_checkpoint(tmp_path / "killed/checkpoints/last.pt")
    assert (state["epoch"], state["batch_in_epoch"]) == (0, 6)
    assert not (tmp_path / "killed/metrics.csv").exists()
    train(make_config(tmp_path, *common, name="killed"), resume=True)
    a = load_checkpoint(tmp_path / "straight/checkpoints/last.pt")
    b = load_checkpoint(tmp_path / "killed/checkpoints/last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    rows_a = read_metrics(tmp_path / "straight/metrics.csv")
    rows_b = read_metrics(tmp_path / "killed/metrics.csv")
    for ra, rb in zip(rows_a, rows_b, strict=True):
        ra.pop("seconds"), rb.pop("seconds")
        assert ra == rb


def test_refuses_to_overwrite_a_run_and_to_resume_nothing(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        Trainer(make_config(tmp_path), resume=True)
    train(make_config(tmp_path, "trainer.max_epochs=1", "trainer.test=false"))
    with pytest.raises(OutputError, match="--resume"):
        Trainer(make_config(tmp_path))
    with pytest.raises(CheckpointError, match=r"last\.pt: weight 'net\.0\.weight' has shape"):
        Trainer(make_config(tmp_path, "model.hidden=16"), resume=True)

def test_init_from_starts_from_given_weights_and_refuses_what_does_not_fit(tmp_path, caplog):

    train(make_config(tmp_path, "trainer.max_epochs=2", "trainer.test=false", name="first"))
    source, _ = load_model(tmp_path / "first")  # its best checkpoint
    init = f"init_from={tmp_path / 'first'}"
    fresh = Trainer(make_config(tmp_path, init, name="second"))
    for key, value in source.state_dict().items():
        torch.testing.assert_close(fresh.model.state_dict()[key], value, rtol=0, atol=0)
    random_init = Trainer(make_config(tmp_path, name="third")).model.state_dict()
    assert not torch.equal(random_init["net.0.weight"], source.state_dict()["net.0.weight"])

    # --resume continues its own weights, whatever init_from says
    train(make_config(tmp_path, init, "trainer.max_epochs=1", "trainer.test=false",
                      name="second"))
    last = load_checkpoint(tmp_path / "second/checkpoints/last.pt")["model"]
    resumed = Trainer(make_config(tmp_path, init, "trainer.max_epochs=2", name="second"),
                      resume=True)
    assert torch.equal(resumed.model.state_dict()["net.0.weight"], last["net.0.weight"])
    assert not torch.equal(last["net.0.weight"], source.state_dict()["net.0.weight"])

    with caplog.at_level("WARNING", logger="audionets.train"):
        Trainer(make_config(tmp_path, init, "model.dropout=0.5", name="seventh"))
    assert "differs from this config in model.dropout=0.0" in caplog.text

    with pytest.raises(CheckpointError, match=r"init_from=.*'net.0.weight' has shape \(8, 2\)"):
        Trainer(make_config(tmp_path, init, "model.hidden=16", name="fourth"))
    with pytest.raises(ConfigError, match="a separation model cannot initialise a classification"):
        Trainer(make_config(tmp_path, "init_from=sepformer-synth-2spk", name="fifth"))
    with pytest.raises(CheckpointError, match="^init_from: no-such-model: no such file"):
        Trainer(make_config(tmp_path, "init_from=no-such-model", name="sixth"))


def test_bad_monitor_and_mismatched_classes(tmp_path):
    with pytest.raises(ConfigError, match="trainer.monitor: 'valid_si_snri' is not a metric"):
        Trainer(make_config(tmp_path, "trainer.monitor=valid_si_snri"))
    with pytest.raises(ConfigError, match="model.num_classes: 5"):
        Trainer(make_config(tmp_path, "model.num_classes=5"))
    with pytest.raises(ConfigError, match="unknown key model.depth"):
        Trainer(make_config(tmp_path, "model.depth=3"))
    with pytest.raises(ConfigError, match="unknown key loss.threshold"):
        Trainer(make_config(tmp_path, "loss.threshold=-30"))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cpu_mixed_precision_and_cosine_schedule(tmp_path, precision):
    result = train(make_config(
        tmp_path, f"trainer.precision={precision}", "scheduler.name=cosine",
        "scheduler.warmup_steps=3", "scheduler.min_lr=0.005", "trainer.max_epochs=2",
        "trainer.test=false",
    ))
    rows = read_metrics(tmp_path / "run/metrics.csv")
    assert all(math.isfinite(r["train_loss"]) for r in rows)
    assert rows[-1]["valid_loss"] < rows[0]["valid_loss"]
    # after the last step the cosine schedule has reached min_lr
    assert rows[-1]["lr"] == pytest.approx(0.005)
    scaler = load_checkpoint(tmp_path / "run/checkpoints/last.pt")["scaler"]
    assert ("scale" in scaler) == (precision == "fp16")  # GradScaler only for fp16


def test_cosine_schedule_ends_with_the_run_when_max_steps_is_beyond_it(tmp_path):
    # 2 epochs x 6 steps end the run long before max_steps: the decay must end there too
    train(make_config(tmp_path, "scheduler.name=cosine", "trainer.max_epochs=2",
                      "trainer.max_steps=1000", "trainer.test=false"))
    assert read_metrics(tmp_path / "run/metrics.csv")[-1]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_min_steps_adds_epochs_on_a_small_data_set_and_the_schedule_follows(tmp_path, caplog):
    # 24 items at batch 4: 6 steps per epoch; 2 epochs are 12 steps, min_steps=15 makes it 3
    with caplog.at_level("INFO", logger="audionets.train"):
        result = train(make_config(tmp_path, "trainer.max_epochs=2", "trainer.min_steps=15",
                                   "scheduler.name=cosine", "trainer.test=false"))
    assert result.status == "completed" and result.epoch == 3 and result.step == 18
    # the log and the CLI's last line count the epochs min_steps raised, not max_epochs
    assert "epoch 3/3 (step 18)" in caplog.text and result.max_epochs == 3
    rows = read_metrics(tmp_path / "run/metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # the decay ends with the run
    assert rows[1]["lr"] > 0.001  # not at the end of epoch 2
    # a large enough max_epochs is left alone
    train(make_config(tmp_path, "trainer.max_epochs=4", "trainer.min_steps=5",
                      "trainer.test=false", name="more"))
    assert len(read_metrics(tmp_path / "more/metrics.csv")) == 4
    with pytest.raises(ConfigError, match="trainer.min_steps"):
        make_config(tmp_path, "trainer.min_steps=0")


def test_a_broken_test_split_fails_before_training(tmp_path):
    # (a layout dataset would fail here the same way on a missing test file)
    with pytest.raises(ConfigError, match="unknown key data.colour"):
        Trainer(make_config(tmp_path, "data.test.colour=red"))
    assert not (tmp_path / "run").exists()
    Trainer(make_config(tmp_path, "data.test.colour=red", "trainer.test=false"))


def test_cosine_factor_shape():
    values = [_cosine_factor(s, 4, 20, 0.0) for s in range(21)]
    assert values[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert values[12] == pytest.approx(0.5)  # half-way through the decay
    assert values[20] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(values[3:], values[4:]))


def test_plateau_halves_the_lr_when_the_metric_stalls(tmp_path):
    # lr 1e-6 barely moves the monitored loss (less than the 1e-4 relative threshold), so with
    # patience 0 every epoch after the first is a stall; rows log the lr each epoch trained with
    train(make_config(tmp_path, "optimizer.lr=1e-6", "scheduler.name=plateau",
                      "scheduler.patience=0", "scheduler.factor=0.5", "trainer.monitor=valid_loss",
                      "trainer.max_epochs=4", "trainer.test=false"))
    lrs = [r["lr"] for r in read_metrics(tmp_path / "run/metrics.csv")]
    assert lrs == pytest.approx([1e-6, 1e-6, 0.5e-6, 0.25e-6], rel=1e-6)


# ------------------------------------------------------------------------------- tasks


def test_classification_task_loss_and_accuracy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0]])
    batch = {"wav": logits, "label": torch.tensor([0, 0, 0])}
    task = ClassificationTask(label_smoothing=0.1)
    loss, metrics = task.step(nn.Identity(), batch)
    logp = torch.log_softmax(logits, -1).numpy()
    expected = -(0.95 * logp[:, 0] + 0.05 * logp[:, 1])
    assert metrics["loss"].numpy() == pytest.approx(expected, rel=1e-5)
    assert float(loss) == pytest.approx(expected.mean(), rel=1e-5)
    assert metrics["accuracy"].tolist() == [1.0, 0.0, 1.0]


def test_separation_task_threshold_drops_easy_items():
    torch.manual_seed(0)
    sources = torch.randn(3, 2, 400)
    estimates = sources.flip(1).clone()  # perfect but swapped
    estimates[1] += 0.5 * torch.randn(2, 400)
    estimates[2] += 2.0 * torch.randn(2, 400)
    batch = {"mix": sources.sum(1), "sources": sources}
    model = lambda mix: estimates  # noqa: E731
    plain_loss, metrics = SeparationTask().step(model, batch)
    assert metrics["si_snr"][0] > 60  # permutation found despite the swap
    assert float(plain_loss) == pytest.approx(float(metrics["loss"].mean()))
    thr_loss, _ = SeparationTask(threshold=-30.0).step(model, batch)
    assert float(thr_loss) == pytest.approx(float(metrics["loss"][1:].mean()), rel=1e-5)
    # improvement = SI-SNR minus the SI-SNR of the mixture itself, per item averaged over sources
    mix = batch["mix"].numpy()

    def si_snr(e, t):
        e, t = e - e.mean(), t - t.mean()
        proj = (e @ t) / (t @ t) * t
        return 10 * np.log10((proj @ proj) / ((e - proj) @ (e - proj)))

    base = [np.mean([si_snr(mix[b], sources[b, s].numpy()) for s in range(2)]) for b in range(3)]
    assert (metrics["si_snr"] - metrics["si_snri"]).numpy() == pytest.approx(base, abs=1e-3)


def test_reconstruction_task_l1_and_snr():
    wav = torch.randn(2, 100)
    noisy = wav + 0.1 * torch.randn(2, 100)
    loss, metrics = ReconstructionTask(kind="l1").step(lambda x: noisy, {"wav": wav})
    assert float(loss) == pytest.approx(float((noisy - wav).abs().mean()), rel=1e-6)
    expected = 10 * np.log10((wav**2).sum(-1).numpy() / ((wav - noisy) ** 2).sum(-1).numpy())
    assert metrics["snr"].numpy() == pytest.approx(expected, rel=1e-4)
    mse, _ = ReconstructionTask(kind="mse").step(lambda x: noisy, {"wav": wav})
    assert float(mse) == pytest.approx(float(((noisy - wav) ** 2).mean()), rel=1e-6)
    with pytest.raises(ConfigError, match="loss.kind"):
        build_task("reconstruction", {"kind": "huber"})


def test_toy_recipe_trains_through_the_cli(tmp_path):
    from audionets.cli import main

    recipe = Path(__file__).resolve().parents[1] / "recipes/toy/config.yaml"
    code = main(["train", str(recipe), f"experiment_dir={tmp_path / 'toy'}", "trainer.device=cpu",
                 "trainer.max_epochs=1", "data.num_examples=4", "data.segment_seconds=0.25",
                 "data.valid.num_examples=2", "data.test.num_examples=2"])
    assert code == 0
    test = json.loads((tmp_path / "toy/test_metrics.json").read_text())
    assert {"test_si_snr", "test_si_snri", "test_loss"} <= set(test)
    config = yaml.safe_load((tmp_path / "toy/config.yaml").read_text())
    assert config["model"]["num_sources"] == 2 and config["data"]["num_examples"] == 4


def test_cli_interrupt_prints_how_to_resume(tmp_path, capsys):
    from audionets.cli import main

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(make_config(tmp_path).to_dict()))
    code = main(["train", str(config), "model.kill_at_call=3"])
    assert code == 128 + signal.SIGTERM
    out = capsys.readouterr().out
    assert "stopped by SIGTERM" in out
    assert f"audionets train {config} model.kill_at_call=3 --resume" in out
    # the run resumes with its own config (the kill included) unless an override changes it
    assert main(["train", str(config), "--resume", "trainer.max_epochs=1",
                 "model.kill_at_call=null"]) == 0
    assert load_checkpoint(tmp_path / "run/checkpoints/last.pt")["epoch"] == 1


def test_metrics_logger_resume_truncation_and_tensorboard(tmp_path, monkeypatch):
    import sys
    import types

    from audionets.training.metrics_log import MetricsLogger

    scalars = []

    class FakeWriter:
        def __init__(self, log_dir):
            self.log_dir = log_dir

        def add_scalar(self, tag, value, step):
            scalars.append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            pass

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    logger = MetricsLogger(tmp_path)
    for epoch in (1, 2, 3, 3.5):  # 3.5: a partial epoch, after a max_steps stop
        logger.log({"epoch": epoch, "step": 10 * epoch, "train_loss": 1.0 / epoch,
                    "valid_loss": 2.0 / epoch})
    # TensorBoard's x axis is the optimizer step: the partial epoch gets its own point
    assert ("train/loss", 0.5, 20) in scalars and ("valid/loss", 2.0 / 3, 30) in scalars
    assert ("valid/loss", 2.0 / 3.5, 35) in scalars and len(scalars) == 8
    assert logger.plot().read_bytes()[:4] == b"\x89PNG"
    # a run resumed from the checkpoint of epoch 2 drops the rows after it, then goes on
    resumed = MetricsLogger(tmp_path, resume_epoch=2, tensorboard=False)
    resumed.log({"epoch": 3, "train_loss": 0.25, "valid_loss": 0.5, "lr": 0.1})
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[2]["train_loss"] == 0.25 and rows[2]["lr"] == 0.1
    assert math.isnan(rows[0]["lr"])  # a column added later is empty in earlier rows


def test_a_run_stopped_mid_epoch_logs_the_epoch_fraction(tmp_path):
    # 6 steps per epoch: step 9 is half-way through epoch 2
    result = train(make_config(tmp_path, "trainer.max_steps=9", "trainer.test=false"))
    assert result.status == "max_steps"
    rows = read_metrics(tmp_path / "run/metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 1.5] and rows[-1]["step"] == 9


def test_initial_weights_depend_on_the_seed_only(tmp_path):
    # the train items draw from the global RNG (Tones adds noise); checking the first item
    # while building the trainer must not move the seed the weights are drawn from
    from audionets.training.loading import seed_everything
    from audionets.training.trainer import build_model

    trainer = Trainer(make_config(tmp_path))
    built = trainer.model.state_dict()
    seed_everything(trainer.config.seed)
    expected = build_model(trainer.config).state_dict()  # the config resolved by the trainer
    assert all(torch.equal(built[k], expected[k]) for k in expected)


def test_cli_resume_keeps_the_runs_own_overrides(tmp_path, caplog):
    # a plain --resume after a run started with overrides continues that run, not the recipe
    import yaml

    from audionets.cli import main

    recipe = Path(__file__).resolve().parents[1] / "recipes/toy/config.yaml"
    exp = tmp_path / "run"
    first = ["train", str(recipe), f"experiment_dir={exp}", "data.num_examples=8",
             "trainer.max_epochs=1", "trainer.test=false", "trainer.device=cpu"]
    assert main(first) == 0
    with caplog.at_level("INFO", logger="audionets.train"):
        assert main(["train", str(recipe), f"experiment_dir={exp}", "--resume",
                     "trainer.max_epochs=2"]) == 0
    saved = yaml.safe_load((exp / "config.yaml").read_text())
    assert saved["data"]["num_examples"] == 8 and saved["trainer"]["test"] is False
    assert saved["trainer"]["max_epochs"] == 2  # an override given with --resume applies
    assert "8 train / 4 valid items" in caplog.text
    assert "resuming " in caplog.text and "after epoch 1, step 2" in caplog.text
    assert [r["epoch"] for r in read_metrics(exp / "metrics.csv")] == [1, 2]



@pytest.mark.parametrize("overrides, group_value", [
    (("optimizer.name=sgd", "optimizer.lr=0.1"), ("momentum", 0.9)),
    (("optimizer.name=sgd", "optimizer.lr=0.1", "optimizer.nesterov=true"), ("nesterov", True)),
    (("optimizer.name=adagrad", "optimizer.lr=0.1"), ("lr_decay", 0)),
    (("optimizer.name=rmsprop", "optimizer.lr=0.01", "optimizer.alpha=0.9"), ("alpha", 0.9)),
    (("optimizer.name=adam", "optimizer.betas=[0.8,0.99]"), ("betas", [0.8, 0.99])),
    (("optimizer.name=adamw", "optimizer.weight_decay=0.01"), ("weight_decay", 0.01)),
])
def test_every_optimizer_of_the_config_trains(tmp_path, overrides, group_value):
    result = train(make_config(tmp_path, "trainer.max_epochs=2", "trainer.test=false", *overrides))
    rows = read_metrics(tmp_path / "run/metrics.csv")
    assert result.status == "completed"
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    group = load_checkpoint(tmp_path / "run/checkpoints/last.pt")["optimizer"]["param_groups"][0]
    key, value = group_value
    assert group[key] == (tuple(value) if isinstance(value, list) else value)
