"""The task registry: each task builds from config, and scores an evaluated item as a batch."""

from __future__ import annotations

import pytest
import torch
import yaml
from torch import nn

from audionets import hub
from audionets.errors import CheckpointError, ConfigError
from audionets.export import export_section
from audionets.inference.backends import load_exported
from audionets.registry import TASKS
from audionets.tasks import (
    ClassificationTask,
    ReconstructionTask,
    SeparationTask,
    Task,
    build_task,
)


def test_the_registry_holds_every_task_under_its_name():
    assert list(TASKS) == ["classification", "reconstruction", "separation"]
    for name in TASKS:
        assert TASKS.get(name).name == name
    assert isinstance(build_task("separation", {"threshold": -30}), SeparationTask)
    with pytest.raises(ConfigError, match="unknown key loss.kind; loss accepts: threshold"):
        build_task("separation", {"kind": "l1"})
    with pytest.raises(ConfigError, match="unknown task 'regression'; choose one of: "
                                          "classification, reconstruction, separation"):
        build_task("regression")


class Swapped(nn.Module):
    """Separation: the true sources of each mixture (looked up), reversed, with some noise."""

    def __init__(self, batch: dict) -> None:
        super().__init__()
        self.batch = batch

    def forward(self, mix):
        rows = [next(i for i, m in enumerate(self.batch["mix"]) if torch.equal(m, row))
                for row in mix]
        sources = self.batch["sources"][rows].flip(1)
        return sources + 0.3 * torch.sin(40 * sources.flip(1))


class Logits(nn.Module):
    def forward(self, wav):
        return torch.stack([wav.mean(-1), wav.std(-1), -wav.mean(-1)], dim=-1)


class Halve(nn.Module):
    def forward(self, wav):
        return 0.5 * wav + 0.01 * torch.cos(wav * 30)


def batch_of(task: str, size: int = 3, length: int = 700) -> dict:
    gen = torch.Generator().manual_seed(7)
    wav = torch.randn(size, length, generator=gen)
    if task == "separation":
        sources = torch.stack([wav, torch.randn(size, length, generator=gen)], dim=1)
        return {"mix": sources.sum(1), "sources": sources}
    if task == "classification":
        return {"wav": wav, "label": torch.tensor([0, 1, 2][:size])}
    return {"wav": wav}


#: (task, model, the row keys of an evaluated item, {row metric: step metric})
CASES = [(ClassificationTask(), Logits(), ["id", "label", "prediction", "correct"],
          {"correct": "accuracy"}),
         (SeparationTask(), Swapped(batch_of("separation")),
          ["id", "si_snr", "si_snri", "sdr", "sdri"],
          {"si_snr": "si_snr", "si_snri": "si_snri"}),
         (ReconstructionTask(), Halve(), ["id", "snr"], {"snr": "snr"})]


@pytest.mark.parametrize("task, model, keys, shared", CASES,
                         ids=lambda case: getattr(case, "name", ""))
def test_an_evaluated_item_has_the_metrics_of_its_training_step(task, model, keys, shared):
    batch = batch_of(task.name)
    loss, metrics = task.step(model, batch)
    assert list(metrics) == ["loss", *task.metric_names]
    assert float(loss) == pytest.approx(float(metrics["loss"].mean()), rel=1e-6)
    for index in range(3):
        item = {key: value[index] for key, value in batch.items()}
        row = task.evaluate_item(model, {**item, "id": f"i{index}"}, torch.device("cpu"))
        assert list(row) == keys and row["id"] == f"i{index}"
        for row_name, step_name in shared.items():
            assert row[row_name] == pytest.approx(float(metrics[step_name][index]), abs=1e-5)


def test_separation_evaluation_adds_sdr_of_the_aligned_estimates():
    from audionets.metrics import sdr

    batch = batch_of("separation", size=1, length=800)
    model = Swapped(batch)
    item = {"mix": batch["mix"][0], "sources": batch["sources"][0], "id": "x"}
    row = SeparationTask().evaluate_item(model, item, torch.device("cpu"))
    aligned = model(batch["mix"])[0].flip(0)  # lined up with the sources again
    assert list(row) == ["id", "si_snr", "si_snri", "sdr", "sdri"]
    assert row["sdr"] == pytest.approx(float(sdr(aligned, item["sources"]).mean()), abs=1e-4)
    assert row["sdr"] > 5  # the swapped order would score far below 0 dB
    assert SeparationTask().evaluation_metrics(sdr=False) == ("si_snr", "si_snri")


def test_classification_checks_the_dataset_labels():
    class Data(list):
        labels = ["a", "b"]

    task = ClassificationTask()
    assert task.dataset_labels(Data(), "data.name=x") == ["a", "b"]
    with pytest.raises(ConfigError, match="data.name=x: the dataset has no .labels"):
        task.dataset_labels([], "data.name=x")
    task.check_labels(["a", "b"], Data())
    task.check_labels(["a", "b"], [])  # a plain list of items has no class names to compare
    with pytest.raises(ConfigError, match="classes differ"):
        task.check_labels(["a", "c"], Data())
    assert SeparationTask().dataset_labels(Data(), "data.name=x") is None


def test_a_model_config_of_an_unknown_task_is_refused():
    config = {"task": "regression", "sample_rate": 8000, "model": {"name": "sepformer"}}
    with pytest.raises(CheckpointError, match="m/config.yaml: task 'regression' is not one of: "
                                              "classification, reconstruction, separation"):
        hub.check_config(config, "m/config.yaml")


def test_each_task_says_how_its_models_export_and_what_its_runner_reads_off_them():
    assert [spec["name"] for spec in SeparationTask.export_signature] == ["mix", "sources"]
    assert SeparationTask.export_signature[1]["shape"] == ["batch", "sources", "time"]
    assert [spec["name"] for spec in ClassificationTask.export_signature] == ["wav", "logits"]
    assert ClassificationTask.export_signature[1]["shape"] == ["batch", "classes"]
    assert ReconstructionTask.export_signature is None
    model = {"name": "sepformer", "num_sources": 3}
    assert SeparationTask.model_attributes({"model": model}) == {"num_sources": 3}
    assert SeparationTask.model_attributes({"model": {"name": "dprnn"}}) == {"num_sources": 2}
    config = {"model": {"name": "tf_cnn"}, "labels": ["dog", "rain", "siren"]}
    assert ClassificationTask.model_attributes(config) == {"num_classes": 3}
    assert ClassificationTask.model_attributes({"model": {"name": "tf_cnn"}}) == {}
    assert ReconstructionTask.model_attributes({"model": {"name": "conv_autoencoder"}}) == {}
    section = export_section("separation", "onnx")
    assert section["inputs"] == [dict(SeparationTask.export_signature[0])]
    assert section["outputs"] == [dict(SeparationTask.export_signature[1])]
    with pytest.raises(CheckpointError, match="a reconstruction model cannot be exported as "
                                              "onnx; only classification and separation "
                                              "models can"):
        export_section("reconstruction", "onnx")


class Denoising(Task):
    """A task the package does not have: exported as ``noisy -> clean``."""

    name = "denoising"
    export_signature = ({"name": "noisy", "dtype": "float32", "shape": ["batch", "time"]},
                        {"name": "clean", "dtype": "float32", "shape": ["batch", "time"]})

    @classmethod
    def model_attributes(cls, config):
        return {"num_channels": int(config["model"]["channels"])}


def test_a_new_task_is_exported_and_run_exported_with_no_edit_outside_its_class(
        tmp_path, monkeypatch):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    monkeypatch.setitem(TASKS._entries, Denoising.name, Denoising)
    section = export_section(Denoising.name, "onnx")
    assert [section["inputs"][0]["name"], section["outputs"][0]["name"]] == ["noisy", "clean"]
    helper, floats = onnx.helper, onnx.TensorProto.FLOAT
    graph = helper.make_graph(  # the identity: enough to see the names and attributes used
        [helper.make_node("Identity", ["noisy"], ["clean"])], "denoiser",
        [helper.make_tensor_value_info("noisy", floats, ["batch", "time"])],
        [helper.make_tensor_value_info("clean", floats, ["batch", "time"])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]),
              tmp_path / section["file"])
    config = {"task": Denoising.name, "sample_rate": 8000, "model": {"name": "x", "channels": 1},
              "export": section}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    model, meta = load_exported(tmp_path)
    assert meta.task == "denoising" and model.num_channels == 1 and model.sample_rate == 8000
    wav = torch.randn(2, 50)
    assert torch.equal(model(wav), wav)
