"""Training configs: schema, dotted overrides, errors that name the key, per-split data."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from audionets import __version__
from audionets.errors import ConfigError
from audionets.training.config import Config, apply_override, load_config, save_config

BASE = {
    "task": "separation",
    "experiment_dir": "exp/x",
    "sample_rate": 8000,
    "model": {"name": "sepformer", "num_sources": 2},
    "data": {"name": "synth_mix", "segment_seconds": 2.0, "num_examples": 100,
             "valid": {"num_examples": 10}, "test": {"segment_seconds": None}},
    "optimizer": {"name": "adam", "lr": 1.5e-4},
    "trainer": {"max_epochs": 5, "batch_size": 2},
}


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(BASE), encoding="utf-8")
    return path


def test_load_fills_defaults_and_types(config_path):
    config = load_config(config_path)
    assert isinstance(config, Config)
    assert config.trainer.max_epochs == 5 and config.trainer.batch_size == 2
    assert config.trainer.accumulate == 1 and config.trainer.device == "auto"
    assert config.optimizer.lr == pytest.approx(1.5e-4)
    assert config.scheduler.name == "none"
    assert config.audionets_version == __version__


def test_overrides_are_yaml_values(config_path):
    config = load_config(config_path, [
        "trainer.max_epochs=3", "trainer.max_steps=7", "trainer.device=cpu", "model.num_sources=3",
        "optimizer.lr=1e-3", "experiment_dir=exp/other", "trainer.grad_clip=null",
        "data.noise_snr_db=[0, 10]", "trainer.test=false",
    ])
    assert config.trainer.max_epochs == 3 and config.trainer.max_steps == 7
    assert config.trainer.device == "cpu"
    assert config.model["num_sources"] == 3
    assert isinstance(config.optimizer.lr, float) and config.optimizer.lr == 1e-3
    assert config.experiment_dir == "exp/other"
    assert config.trainer.grad_clip is None and config.trainer.test is False
    assert config.data["noise_snr_db"] == [0, 10]


def test_experiment_dir_expands_the_home_folder(config_path, monkeypatch, tmp_path):
    # a YAML "~/runs/x" reaches no shell: it must not become a folder named "~"
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config(config_path, ["experiment_dir=~/runs/x"])
    assert Path(config.experiment_dir) == tmp_path / "runs" / "x"
    assert load_config(config_path).experiment_dir == "exp/x"  # relative paths stay relative


def test_float_fields_accept_ints(config_path):
    config = load_config(config_path, ["optimizer.lr=1"])
    assert isinstance(config.optimizer.lr, float) and config.optimizer.lr == 1.0


@pytest.mark.parametrize("override, message", [
    ("trainer.max_epochs=abc", "trainer.max_epochs: expected int, got 'abc'"),
    ("trainer.max_epochs=2.5", "trainer.max_epochs: expected int, got 2.5"),
    ("trainer.max_epochs=true", "trainer.max_epochs: expected int, got True"),
    ("optimizer.lr=fast", "optimizer.lr: expected float, got 'fast'"),
    ("trainer.max_steps=x", "trainer.max_steps: expected int or null, got 'x'"),
])
def test_wrong_types_name_the_key(config_path, override, message):
    with pytest.raises(ConfigError) as err:
        load_config(config_path, [override])
    assert str(err.value) == message


@pytest.mark.parametrize("override, key", [
    ("trainer.max_epoch=3", "trainer.max_epoch"),
    ("optimizer.learning_rate=1", "optimizer.learning_rate"),
    ("scheduler.gamma=1", "scheduler.gamma"),
    ("epochs=3", "epochs"),
])
def test_unknown_keys_are_rejected_with_valid_ones(config_path, override, key):
    with pytest.raises(ConfigError) as err:
        load_config(config_path, [override])
    text = str(err.value)
    assert f"unknown key {key};" in text
    assert "\n" not in text
    section = key.split(".")[0] if "." in key else None
    if section == "trainer":
        assert "max_epochs" in text and "limit_valid_batches" in text
    if section is None:
        assert "experiment_dir" in text and "trainer" in text


@pytest.mark.parametrize("override, fragment", [
    ("task=regression", "task: 'regression' is not one of"),
    ("trainer.precision=fp8", "trainer.precision"),
    ("optimizer.name=lion", "optimizer.name"),
    ("scheduler.name=step", "scheduler.name"),
    ("trainer.device=tpu", "trainer.device"),
    ("trainer.batch_size=0", "trainer.batch_size: must be a positive integer"),
    # a negative clip norm flips every gradient: training would climb the loss
    ("trainer.grad_clip=-1", "trainer.grad_clip: must be >= 0, got -1"),
    ("trainer.num_workers=-2", "trainer.num_workers: must be >= 0"),
    ("trainer.keep_best=-3", "trainer.keep_best: must be >= 0"),
    ("scheduler.warmup_steps=-5", "scheduler.warmup_steps: must be >= 0"),
    ("scheduler.factor=1.5", "scheduler.factor: must be in (0, 1"),
    ("model.name=null", "model.name: missing"),
    ("data.valid=3", "data.valid: expected a mapping"),
    ("audionets_version=99.0.0", "newer than the installed"),
    ("trainer=3", "trainer: expected a mapping"),
    ("trainer.max_epochs", "expected key=value"),
    ("trainer.max_epochs.x=1", "trainer.max_epochs is not a mapping"),
])
def test_bad_values(config_path, override, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.").replace("(", r"\(")):
        load_config(config_path, [override])


def test_missing_data_root_names_the_key(config_path, tmp_path):
    with pytest.raises(ConfigError, match=r"^data\.root: folder .*nowhere does not exist"):
        load_config(config_path, [f"data.root={tmp_path / 'nowhere'}"])
    with pytest.raises(ConfigError, match=r"^data\.test\.root"):
        load_config(config_path, [f"data.test.root={tmp_path / 'nowhere'}"])
    config = load_config(config_path, [f"data.root={tmp_path}"])
    assert config.data["root"] == str(tmp_path)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)
    bare = tmp_path / "bare.yaml"
    bare.write_text("task: separation\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="missing key model, data"):
        load_config(bare)


def test_per_split_data_overrides(config_path):
    config = load_config(config_path, ["data.train.num_examples=50"])
    assert config.data_kwargs("train") == {"segment_seconds": 2.0, "num_examples": 50}
    assert config.data_kwargs("valid") == {"segment_seconds": 2.0, "num_examples": 10}
    assert config.data_kwargs("test") == {"segment_seconds": None, "num_examples": 100}


def test_to_dict_round_trips_through_yaml(config_path, tmp_path):
    config = load_config(config_path, ["trainer.max_epochs=9", "scheduler.name=cosine"])
    saved = tmp_path / "saved.yaml"
    save_config(config, saved)
    again = load_config(saved)
    assert again.to_dict() == config.to_dict()
    assert again.trainer.max_epochs == 9 and again.scheduler.name == "cosine"


def test_apply_override_creates_nested_keys():
    tree: dict = {"data": {"name": "x"}}
    apply_override(tree, "data.valid.num_examples=4")
    apply_override(tree, "loss.threshold=-30")
    assert tree == {"data": {"name": "x", "valid": {"num_examples": 4}}, "loss": {"threshold": -30}}


def test_one_version_for_the_package_its_layers_and_pyproject():
    import ast
    from pathlib import Path

    from setuptools.config.pyprojecttoml import read_configuration

    import audionets
    from audionets import _version

    root = Path(audionets.__file__).parent
    assert audionets.__version__ is _version.__version__ == __version__
    assert read_configuration(root.parent / "pyproject.toml")["project"]["version"] == __version__
    # modules inside the package read it from _version, not from the front door
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "audionets":
                assert "__version__" not in {a.name for a in node.names}, path
