"""hub.load_model / save_pretrained on local folders (no network), and audionets export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from audionets import hub
from audionets.errors import CheckpointError, OutputError
from audionets.hub import ModelMeta, load_model, save_pretrained
from audionets.serialization.checkpoints import save_checkpoint

CONFIG = {
    "task": "separation",
    "sample_rate": 8000,
    "model": {"name": "sepformer", "num_sources": 2, "sample_rate": 8000, "encoder_channels": 8,
              "d_model": 8, "chunk_size": 10, "num_blocks": 1, "intra_layers": 1,
              "inter_layers": 1, "nhead": 2, "d_ffn": 16},
}


def tiny_model():
    return hub.build_from_config(CONFIG, "test").eval()


def outputs_equal(a, b, samples=800):
    mix = torch.randn(2, samples)
    with torch.no_grad():
        return torch.equal(a(mix), b(mix))


def test_save_pretrained_round_trip(tmp_path):
    model = tiny_model()
    meta = ModelMeta(task="separation", sample_rate=8000, config=dict(CONFIG))
    save_pretrained(model, meta, tmp_path / "m")
    loaded, loaded_meta = load_model(tmp_path / "m")
    assert outputs_equal(model, loaded)
    assert not loaded.training
    assert (loaded_meta.task, loaded_meta.sample_rate) == ("separation", 8000)
    assert loaded_meta.labels is None
    assert loaded_meta.source == str(tmp_path / "m")
    saved = yaml.safe_load((tmp_path / "m/config.yaml").read_text())
    assert saved["audionets_version"] == hub.__version__ and saved["model"] == CONFIG["model"]


def test_classifier_labels_round_trip(tmp_path):
    config = {"task": "classification", "sample_rate": 8000,
              "model": {"name": "td_cnn", "num_classes": 3, "sample_rate": 8000,
                        "channels": [4, 4], "kernel_sizes": [8, 3], "strides": [4, 1]}}
    model = hub.build_from_config(config, "test").eval()
    meta = ModelMeta("classification", 8000, ["a", "b", "c"], config)
    save_pretrained(model, meta, tmp_path / "c")
    loaded, meta = load_model(str(tmp_path / "c"))
    assert meta.labels == ["a", "b", "c"]
    assert outputs_equal(model, loaded, samples=400)


def make_experiment(tmp_path: Path) -> tuple[Path, torch.nn.Module, torch.nn.Module]:
    """An experiment folder whose best checkpoint and last.pt hold different weights."""
    exp = tmp_path / "exp"
    (exp / "checkpoints").mkdir(parents=True)
    (exp / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    best, last = tiny_model(), tiny_model()
    save_checkpoint({"model": best.state_dict(), "config": CONFIG, "labels": None},
                    exp / "checkpoints/best-epoch002-valid_si_snri=3.5000.pt")
    worse = tiny_model()
    save_checkpoint({"model": worse.state_dict(), "config": CONFIG, "labels": None},
                    exp / "checkpoints/best-epoch001-valid_si_snri=-1.2500.pt")
    save_checkpoint({"model": last.state_dict(), "config": CONFIG, "labels": None},
                    exp / "checkpoints/last.pt")
    return exp, best, last


def test_experiment_folder_loads_the_best_checkpoint(tmp_path):
    exp, best, last = make_experiment(tmp_path)
    loaded, meta = load_model(exp)
    assert outputs_equal(loaded, best) and not outputs_equal(loaded, last)
    assert meta.source == str(exp / "checkpoints/best-epoch002-valid_si_snri=3.5000.pt")
    for path in (exp / "checkpoints").glob("best-*"):
        path.unlink()
    loaded, _ = load_model(exp)
    assert outputs_equal(loaded, last)


def test_checkpoint_file(tmp_path):
    exp, _, last = make_experiment(tmp_path)
    loaded, meta = load_model(exp / "checkpoints/last.pt")
    assert outputs_equal(loaded, last) and meta.task == "separation"
    # a checkpoint from elsewhere: plain tensors, but not ours
    torch.save({"state_dict": {"w": torch.zeros(3)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"other\.pt: not an audionets training checkpoint "
                                              r"\(no model/config\); pass a checkpoint that "
                                              r"audionets train wrote, or a model folder$"):
        load_model(tmp_path / "other.pt")
    torch.save([torch.zeros(3)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"list\.pt: not an audionets checkpoint \(expected "
                                              r"a dict\); pass a checkpoint that audionets "):
        load_model(tmp_path / "list.pt")


def test_export_cli(tmp_path, capsys):
    from audionets.cli import main

    exp, best, _ = make_experiment(tmp_path)
    assert main(["export", str(exp), str(tmp_path / "out")]) == 0
    loaded, meta = load_model(tmp_path / "out")
    assert outputs_equal(loaded, best)
    assert set(meta.config) >= {"task", "sample_rate", "model", "audionets_version"}
    assert main(["export", str(exp), str(tmp_path / "out")]) == 1  # refuses to overwrite
    assert "--overwrite" in capsys.readouterr().err
    with pytest.raises(OutputError):
        main(["--debug", "export", str(exp), str(tmp_path / "out")])


def test_export_never_replaces_files_it_did_not_write(tmp_path, capsys):
    from audionets.cli import main

    exp, _, _ = make_experiment(tmp_path)
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "config.yaml").write_text("# my recipe\n")
    assert main(["export", str(exp), str(recipe)]) == 1
    assert "already holds config.yaml; pass --overwrite" in capsys.readouterr().err
    assert (recipe / "config.yaml").read_text() == "# my recipe\n"
    assert not (recipe / "model.safetensors").exists()
    # an experiment folder keeps its resolved config and is not turned into a model folder
    config_before = (exp / "config.yaml").read_text()
    assert main(["export", str(exp / "checkpoints" / "last.pt"), str(exp), "--overwrite"]) == 1
    assert "is an experiment folder" in capsys.readouterr().err
    assert (exp / "config.yaml").read_text() == config_before
    assert not (exp / "model.safetensors").exists()
    # a file where a parent folder should be: one line, nothing written
    (tmp_path / "afile").write_text("x")
    assert main(["export", str(exp), str(tmp_path / "afile" / "model")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "afile" in err[0] and "Traceback" not in err[0]


def test_shipped_name_and_hub_id_dispatch(tmp_path, monkeypatch):
    model = tiny_model()
    meta = ModelMeta("separation", 8000, config=dict(CONFIG))
    save_pretrained(model, meta, tmp_path / "shipped" / "tiny")
    monkeypatch.setattr(hub, "PRETRAINED_DIR", tmp_path / "shipped")
    assert hub.shipped_models() == ["tiny"]
    loaded, _ = load_model("tiny")
    assert outputs_equal(model, loaded)

    calls = []

    def fake_download(repo_id):
        calls.append(repo_id)
        return tmp_path / "shipped" / "tiny"

    monkeypatch.setattr(hub, "_download", fake_download)
    loaded, _ = load_model("someone/tiny-sepformer")
    assert calls == ["someone/tiny-sepformer"] and outputs_equal(model, loaded)
    # an existing local path of the same shape is never sent to the hub
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shipped").rename(tmp_path / "someone")
    (tmp_path / "someone" / "tiny").rename(tmp_path / "someone" / "tiny-sepformer")
    load_model("someone/tiny-sepformer")
    assert calls == ["someone/tiny-sepformer"]
    # a mistyped path under a local folder is reported, not fetched from the hub...
    with pytest.raises(CheckpointError, match=r"^someone/tiny-sepfromer: no such file or folder "
                                              r"\(but someone/ is a local folder\); check the "
                                              r"path, or write hf://someone/tiny-sepfromer"):
        load_model("someone/tiny-sepfromer")
    assert calls == ["someone/tiny-sepformer"]
    # ...unless hf:// says it is a hub id
    monkeypatch.setattr(hub, "_download", lambda repo_id: calls.append(repo_id)
                        or tmp_path / "someone" / "tiny-sepformer")
    load_model("hf://someone/tiny-sepfromer")
    assert calls == ["someone/tiny-sepformer", "someone/tiny-sepfromer"]


# ------------------------------------------------------------------------------- errors


def test_failed_download_is_one_line_that_says_what_to_do(monkeypatch):
    import huggingface_hub

    def offline(repo_id):
        raise OSError("ConnectError: [Errno -2] Name or service not known\n"
                      f"(while fetching {repo_id})")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(CheckpointError) as info:
        load_model("someone/not-here")
    assert str(info.value) == (
        "someone/not-here: no such local file or folder, and could not download it from the "
        "Hugging Face hub (ConnectError: [Errno -2] Name or service not known); check the path "
        "or the name, the network and, for a private model, HF_TOKEN")


def write_folder(folder: Path, config: dict, model=None) -> Path:
    meta = ModelMeta("separation", 8000, config=dict(CONFIG))
    save_pretrained(model or tiny_model(), meta, folder)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def test_missing_weights(tmp_path):
    folder = write_folder(tmp_path / "m", CONFIG)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors: weights file missing"):
        load_model(folder)


def test_newer_version_is_refused(tmp_path):
    folder = write_folder(tmp_path / "m", {**CONFIG, "audionets_version": "9.3.0"})
    with pytest.raises(CheckpointError, match="written by audionets 9.3.0, newer than"):
        load_model(folder)
    patch_newer = {**CONFIG, "audionets_version": hub.__version__.rsplit(".", 1)[0] + ".99"}
    load_model(write_folder(tmp_path / "ok", patch_newer))  # a newer patch release is fine


def test_wrong_shapes_name_the_first_key(tmp_path):
    config = {**CONFIG, "model": {**CONFIG["model"], "d_model": 12}}
    folder = write_folder(tmp_path / "m", config)
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    text = str(err.value)
    assert "has shape" in text and "expects" in text and "\n" not in text
    first_bad = next(k for k, v in hub.build_from_config(config, "x").state_dict().items()
                     if v.shape != tiny_model().state_dict()[k].shape)
    assert repr(first_bad) in text


def test_not_a_model_folder_and_unknown_name(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a model folder"):
        load_model(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="no such file, folder or shipped model"):
        load_model("no-such-model-name")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(CheckpointError, match="not a model file"):
        load_model(tmp_path / "notes.txt")


def test_bad_model_config(tmp_path):
    folder = write_folder(tmp_path / "m", {**CONFIG, "model": {"name": "transformer9000"}})
    with pytest.raises(CheckpointError,
                       match="cannot build the model: unknown model 'transformer9000'"):
        load_model(folder)
    folder = write_folder(tmp_path / "n", {"task": "separation", "model": CONFIG["model"]})
    with pytest.raises(CheckpointError, match="no 'sample_rate'"):
        load_model(folder)


def test_corrupt_weights(tmp_path):
    folder = write_folder(tmp_path / "m", CONFIG)
    (folder / "model.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(CheckpointError, match="unreadable weights"):
        load_model(folder)


def test_speechbrain_folder_goes_to_the_interop_loader(tmp_path, monkeypatch):
    import audionets.interop.speechbrain as sb

    model = tiny_model()
    seen = []

    def fake_loader(folder):
        seen.append(Path(folder))
        return model, {"task": "separation", "sample_rate": 8000, "labels": None, "config": CONFIG}

    monkeypatch.setattr(sb, "load_sepformer_folder", fake_loader)
    (tmp_path / "sb").mkdir()
    (tmp_path / "sb/hyperparams.yaml").write_text("num_spks: 2\n")
    loaded, meta = load_model(tmp_path / "sb")
    assert seen == [tmp_path / "sb"] and loaded is model
    assert (meta.task, meta.sample_rate, meta.source) == ("separation", 8000, str(tmp_path / "sb"))
