"""Issue 18 (reliability round 2): each case that broke, as a user or an attacker would hit it.

Every test here failed before its fix. Model folders and audio are tiny; the subprocess tests
run the real ``audionets`` entry point where the behaviour depends on the process (signals,
memory, file size limits, missing packages).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audionets import audio

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, *args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)


def _sine(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ------------------------------------------------------------------ 1. odd sample rates


@pytest.mark.parametrize("rate", [22051, 44101, 199999])
def test_odd_rates_resample_with_a_small_kernel_and_the_right_signal(rate):
    orig, new = audio.resample_ratio(rate, 8000)
    assert audio._kernel_values(orig, new) <= audio.MAX_KERNEL_VALUES
    assert abs(new / orig - 8000 / rate) / (8000 / rate) < 1e-5
    wav = torch.from_numpy(_sine(rate, 0.5))[None]
    out = audio.resample(wav, rate, 8000)
    assert out.shape == (1, math.ceil(wav.shape[-1] * 8000 / rate))
    expected = _sine(8000, 1.0)[: out.shape[-1]]  # the same 440 Hz sine sampled at 8 kHz
    inner = slice(200, -200)  # away from the filter's edges
    assert np.abs(out[0].numpy()[inner] - expected[inner]).max() < 2e-3


def test_odd_rate_resampling_memory_stays_small(tmp_path):
    path = tmp_path / "odd.wav"
    sf.write(str(path), _sine(44101, 0.5), 44101)
    code = ("import resource, sys, torch\n"
            "from audionets import audio\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "audio.load(sys.argv[1], sample_rate=8000)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    done = _python(code, str(path))
    assert done.returncode == 0, done.stderr
    grown_mb = int(done.stdout.split()[-1]) / 1024
    assert grown_mb < 500, f"resampling 0.5 s at 44101 Hz grew the process by {grown_mb:.0f} MB"


# ------------------------------------------------------------- shared tiny model folders


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from tests.test_cli_errors import LABELS, TINY_CNN, TINY_SEP, _save

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    return {"sep": _save(root / "sep", TINY_SEP, "separation"),
            "clf": _save(root / "clf", TINY_CNN, "classification", LABELS)}


def _cli(capsys, *argv: str) -> tuple[int, list[str], list[str]]:
    from audionets.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def _noise(seconds: float, rate: int = 8000) -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal(int(seconds * rate))).astype(np.float32)


def _blocks_joined(path: Path, block: int, overlap: int) -> torch.Tensor:
    blocks = list(audio.stream(path, block, overlap=overlap))
    assert all(b.shape[-1] == block for b in blocks[:-1])
    return torch.cat([blocks[0]] + [b[:, overlap:] for b in blocks[1:]], dim=-1)


# ------------------------------------------------- 8. / 14. formats that cannot seek, MP3


@pytest.mark.parametrize("subtype", ["GSM610", "G721_32"])
def test_unseekable_wavs_are_read_and_streamed(subtype, models, tmp_path, capsys):
    path = tmp_path / f"{subtype}.wav"
    sf.write(str(path), _noise(3.0), 8000, format="WAV", subtype=subtype)
    whole, rate = audio.load(path)
    assert rate == 8000 and whole.shape[-1] >= 3 * 8000 and whole.abs().max() > 0.01
    for block, overlap in ((4000, 1000), (1000, 0), (100_000, 0)):
        assert torch.equal(_blocks_joined(path, block, overlap), whole)
    good = tmp_path / "good.wav"
    sf.write(str(good), _noise(0.5), 8000)
    code, out, err = _cli(capsys, "separate", path, good, "--model", models["sep"],
                          "--chunk-seconds", "1", "--device", "cpu")
    assert code == 0, err
    assert len(out) == 4 and all(Path(p).is_file() for p in out)


def test_low_rate_mp3_streamed_equals_a_whole_read(tmp_path):
    path = tmp_path / "low.mp3"
    sf.write(str(path), _noise(1.5, 22050), 22050, format="MP3")
    whole, _ = audio.load(path)
    for block, overlap in ((4000, 1000), (1000, 0), (1000, 999)):
        assert torch.equal(_blocks_joined(path, block, overlap), whole)


# ---------------------------------------------------------------------- 15. misdiagnoses


def test_fifo_and_device_are_not_called_zero_byte_files(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(audio.AudioError, match="not a regular file"):
            audio.load(path)


def test_symlink_loop_is_named_as_such(tmp_path):
    (tmp_path / "a.wav").symlink_to(tmp_path / "b.wav")
    (tmp_path / "b.wav").symlink_to(tmp_path / "a.wav")
    with pytest.raises(audio.AudioError, match="symbolic link loop"):
        audio.info(tmp_path / "a.wav")


def test_valid_wav_with_a_non_utf8_name_is_read_and_separated(models, tmp_path):
    folder = os.fsencode(tmp_path)
    raw = os.path.join(folder, b"caf\xe9.wav")  # Latin-1 name, not valid UTF-8
    sf.write(raw, _noise(0.5), 8000)
    path = Path(os.fsdecode(raw))
    wav, _ = audio.load(path)
    assert wav.shape == (1, 4000)
    done = subprocess.run([sys.executable, "-m", "audionets", "separate", raw, "--model",
                           models["sep"], "--device", "cpu"], capture_output=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [os.path.join(folder, b"caf\xe9_s%d.wav" % k)
                                        for k in (1, 2)]
    assert sorted(os.listdir(folder)) == [b"caf\xe9.wav", b"caf\xe9_s1.wav", b"caf\xe9_s2.wav"]


# ------------------------------------------------------------ 2. / 10. damaged model folders


def _model_folder(tmp_path: Path, name: str, kind: str = "sep", edit_config=None,
                  edit_weights=None) -> Path:
    """A tiny model folder whose config and/or weights were edited afterwards."""
    import yaml
    from safetensors.torch import load_file, save_file

    from audionets import hub
    from tests.test_cli_errors import LABELS, TINY_CNN, TINY_SEP, _save

    torch.manual_seed(0)
    folder = _save(tmp_path / name, TINY_SEP if kind == "sep" else TINY_CNN,
                   "separation" if kind == "sep" else "classification",
                   None if kind == "sep" else LABELS)
    if edit_config is not None:
        config = yaml.safe_load((folder / hub.CONFIG).read_text())
        edit_config(config)
        (folder / hub.CONFIG).write_text(yaml.safe_dump(config))
    if edit_weights is not None:
        state = load_file(str(folder / hub.WEIGHTS))
        edit_weights(state)
        save_file(state, str(folder / hub.WEIGHTS))
    return folder


def _first_weight(fn):
    def edit(state):
        key = sorted(k for k in state if state[k].is_floating_point())[0]
        state[key] = fn(state[key])
    return edit


def _nan_weight(t):
    t = t.clone()
    t.view(-1)[0] = math.nan
    return t


@pytest.mark.parametrize("command", ["separate", "classify"])
def test_nan_weights_are_refused_at_load_and_nothing_is_written(command, tmp_path, capsys):
    kind = "sep" if command == "separate" else "clf"
    folder = _model_folder(tmp_path, "nan", kind, edit_weights=_first_weight(_nan_weight))
    wav = tmp_path / "mix.wav"
    sf.write(str(wav), _noise(0.5), 8000)
    code, out, err = _cli(capsys, command, wav, "--model", folder, "--json"
                          if command == "classify" else "--overwrite")
    assert code == 1 and out == []
    assert len(err) == 1 and "NaN or Inf values" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.wav", "nan"]


def test_nan_outputs_are_never_written_nor_returned(models, tmp_path):
    from audionets import hub
    from audionets.errors import CheckpointError
    from audionets.inference import Classifier, Separator

    sep_model, meta = hub.load_model(models["sep"])
    clf_model, clf_meta = hub.load_model(models["clf"])
    for model in (sep_model, clf_model):
        with torch.no_grad():
            next(model.parameters()).fill_(math.inf)
    separator = Separator(sep_model, 8000)
    wav = tmp_path / "mix.wav"
    sf.write(str(wav), _noise(0.5), 8000)
    with pytest.raises(CheckpointError, match="NaN or Inf outputs"):
        separator.separate_file(wav, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.wav"]
    classifier = Classifier(clf_model, 8000, clf_meta.labels)
    with pytest.raises(CheckpointError, match="NaN or Inf outputs"):
        classifier.classify_file(wav)


BAD_FOLDERS = {
    "rate_zero": ("sep", lambda c: c.update(sample_rate=0), None, "sample_rate 0"),
    "rate_negative": ("sep", lambda c: c.update(sample_rate=-8000), None, "sample_rate -8000"),
    "rate_nan": ("sep", lambda c: c.update(sample_rate=math.nan), None, "sample_rate nan"),
    "rate_huge": ("sep", lambda c: c.update(sample_rate=99_999_999_999), None, "sample_rate 9"),
    "rate_text": ("sep", lambda c: c.update(sample_rate="fast"), None, "sample_rate 'fast'"),
    "negative_channels": ("sep", lambda c: c["model"].update(encoder_channels=-16), None,
                          "cannot build"),
    "huge_channels": ("sep", lambda c: c["model"].update(encoder_channels=10**11), None,
                      "parameters"),
    "labels_not_a_list": ("clf", lambda c: c.update(labels=7), None, "labels must be"),
    "int_weights": ("sep", None, _first_weight(lambda t: t.round().to(torch.int64)),
                    "int64 values"),
    "bool_weights": ("sep", None, _first_weight(lambda t: t > 0), "bool values"),
    "complex_weights": ("sep", None, _first_weight(lambda t: t.to(torch.complex64)),
                        "complex64 values"),
}


@pytest.mark.parametrize("case", sorted(BAD_FOLDERS))
def test_damaged_model_folders_are_one_clear_error(case, tmp_path):
    from audionets import hub
    from audionets.errors import CheckpointError

    kind, edit_config, edit_weights, match = BAD_FOLDERS[case]
    folder = _model_folder(tmp_path, case, kind, edit_config, edit_weights)
    with pytest.raises(CheckpointError, match=match) as caught:
        hub.load_model(folder)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("entry", ["model_list", "int_weights", "labels_dict"])
def test_checkpoint_entries_of_the_wrong_type_are_refused(entry, models, tmp_path):
    from audionets import hub
    from audionets.errors import CheckpointError

    model, meta = hub.load_model(models["clf"])
    state = {"model": model.state_dict(), "config": meta.config, "labels": meta.labels}
    if entry == "model_list":
        state["model"] = list(state["model"].values())
    elif entry == "int_weights":
        state["model"] = {k: v.to(torch.int32) for k, v in state["model"].items()}
    else:
        state["labels"] = {"a": 1}
    torch.save(state, tmp_path / "run.pt")
    with pytest.raises(CheckpointError, match="run.pt"):
        hub.load_model(tmp_path / "run.pt")


# ----------------------------------------------------------- 11. / 16. CLI and API values


@pytest.mark.parametrize("argv, fragment", [
    (["--chunk-seconds", "inf"], "argument --chunk-seconds: inf is not a finite number"),
    (["--chunk-seconds", "1e308"], "--chunk-seconds must be from 0.25 to 3600"),
    (["--chunk-seconds", "0.0001"], "--chunk-seconds must be from 0.25 to 3600"),
    (["--overlap-seconds", "inf"], "argument --overlap-seconds: inf is not a finite number"),
    (["--overlap-seconds", "1e308"], "--overlap-seconds must be > 0"),
    (["--device", "meta"], "unknown device 'meta'"),
    (["--device", "mps"], "unknown device 'mps'"),
    (["--device", "xpu"], "unknown device 'xpu'"),
])
def test_cli_values_out_of_bounds_are_one_error_before_any_work(argv, fragment, models, tmp_path,
                                                              capsys):
    wav = tmp_path / "mix.wav"
    sf.write(str(wav), _noise(0.5), 8000)
    try:
        code, out, err = _cli(capsys, "separate", wav, "--model", models["sep"], *argv)
        assert out == [] and len(err) == 1, err
    except SystemExit as exit:  # argparse: usage line + one error line
        code, err = exit.code, capsys.readouterr().err.splitlines()[-1]
    assert code in (1, 2) and fragment in str(err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.wav"]


def test_python_api_errors_are_audionets_errors(models, tmp_path):
    from audionets.errors import AudioError, ConfigError, OutputError
    from audionets.inference import Classifier, Separator

    separator = Separator.from_pretrained(models["sep"])
    classifier = Classifier.from_pretrained(models["clf"])
    with pytest.raises(AudioError, match="batch > 0"):
        separator.separate_batch(torch.zeros(0, 800))
    with pytest.raises(AudioError, match="batch > 0"):
        classifier.classify_batch(torch.zeros(0, 800))
    with pytest.raises(ConfigError, match="chunk_seconds must be"):
        separator.separate_long(torch.zeros(1, 800), chunk_seconds=math.inf)
    wav = tmp_path / "mix.wav"
    sf.write(str(wav), _noise(0.5), 8000)
    with pytest.raises(ConfigError, match="top_k"):
        classifier.classify_file(wav, top_k=0)
    separator.separate_file(wav, progress=False)
    with pytest.raises(OutputError, match="overwrite=True"):
        separator.separate_file(wav, progress=False)


# ------------------------------------------------------------------- 23. one device default


@pytest.mark.parametrize("command", ["separate", "classify", "demo", "evaluate"])
def test_every_command_defaults_to_device_auto_and_says_so(command, capsys):
    from audionets.cli import build_parser

    parser = build_parser()
    needed = {"separate": ["x.wav"], "classify": ["x.wav"], "demo": [],
              "evaluate": ["m", "--data", "synth_mix"]}[command]
    assert parser.parse_args([command, *needed]).device == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--help"])
    assert "default: auto" in " ".join(capsys.readouterr().out.split())


# ------------------------------------------------------- 18. / 19. what an install needs

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, Block())
"""


def test_runtime_install_works_without_the_dev_extra(models, tmp_path):
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    assert "librosa" not in runtime
    dev_only = ["librosa", "pytest", "hypothesis", "speechbrain", "mir_eval", "torchmetrics"]
    wav = tmp_path / "mix.wav"
    sf.write(str(wav), _noise(0.5), 8000)
    code = BLOCK.format(blocked=set(dev_only)) + (
        "from audionets.cli import main\n"
        "import audionets.inference, audionets.training.trainer\n"
        f"assert main(['separate', {str(wav)!r}, '--model', {str(models['sep'])!r}]) == 0\n"
        f"assert main(['classify', {str(wav)!r}, '--model', {str(models['clf'])!r}]) == 0\n"
        "assert not any(m.split('.')[0] in " + repr(set(dev_only)) + " for m in sys.modules)\n")
    done = _python(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.splitlines()) == 3  # two sources, one classification


def test_tensorboard_is_an_extra_and_a_log_line_says_when_it_is_off(tmp_path):
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(dep.startswith("tensorboard") for dep in extras["tensorboard"])
    code = BLOCK.format(blocked={"tensorboard"}) + (
        "import logging\n"
        "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        "from audionets.training.metrics_log import MetricsLogger\n"
        f"MetricsLogger({str(tmp_path)!r})\n")
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert "TensorBoard logging is off" in done.stderr
    assert "audionets[tensorboard]" in done.stderr


# ------------------------------------------------------------------- 17. the first hour


def test_readme_activates_the_venv_before_the_first_bare_audionets_command():
    readme = (ROOT / "README.md").read_text()
    first_bare = readme.index("\naudionets ")
    assert "source .venv/bin/activate" in readme[:first_bare]
    assert "relative to" in readme[:first_bare]


# ------------------------------------------------------------- 4. SIGTERM cleans up too


def test_sigterm_to_separate_leaves_no_partial_files(models, tmp_path):
    import signal
    import time

    wav = tmp_path / "long.wav"
    sf.write(str(wav), _noise(240.0), 8000)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    process = subprocess.Popen([sys.executable, "-m", "audionets", "separate", str(wav),
                                "--model", str(models["sep"]), "--out-dir", str(out),
                                "--chunk-seconds", "1", "--device", "cpu"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".partial") and p.stat().st_size > 100_000
                  for p in (out.iterdir() if out.is_dir() else [])):
        assert process.poll() is None and time.monotonic() < deadline, "never started writing"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert b"Traceback" not in err
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------- 9. training values


def _toy_config(tmp_path: Path, *overrides: str):
    from audionets.training.config import load_config

    return load_config(ROOT / "recipes" / "toy" / "config.yaml",
                       [f"experiment_dir={tmp_path / 'exp'}", "trainer.device=cpu",
                        "trainer.progress=false", "trainer.test=false", *overrides])


@pytest.mark.parametrize("override, key", [
    ("trainer.grad_clip=.nan", "trainer.grad_clip: must be a finite number"),
    ("data.segment_seconds=.nan", "data.segment_seconds: must be a finite number"),
    ("seed=123456789012345678901234567890", "seed: must be from 0"),
    ("seed=-1", "seed: must be from 0"),
    ("sample_rate=99999999999", "sample_rate: must be from"),
])
def test_bad_training_values_are_config_errors(override, key, tmp_path):
    from audionets.errors import ConfigError

    with pytest.raises(ConfigError, match=key):
        _toy_config(tmp_path, override)


def test_config_nested_thousands_deep_is_one_error(tmp_path):
    from audionets.errors import ConfigError
    from audionets.training.config import load_config

    path = tmp_path / "deep.yaml"
    path.write_text("task: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)
    with pytest.raises(ConfigError, match="nested too deeply"):
        _toy_config(tmp_path, "data.x=" + "[" * 5000 + "]" * 5000)


def test_negative_channel_count_is_a_config_error(tmp_path):
    from audionets.errors import ConfigError
    from audionets.training.trainer import Trainer

    config = _toy_config(tmp_path, "model.encoder_channels=-16")
    with pytest.raises(ConfigError, match="model: cannot build"):
        Trainer(config)


def test_training_whose_loss_becomes_non_finite_stops_clearly(tmp_path):
    from audionets.errors import TrainingError
    from audionets.training.trainer import train

    config = _toy_config(tmp_path, "optimizer.lr=1e30", "trainer.max_epochs=3")
    with pytest.raises(TrainingError, match="training diverged at step"):
        train(config)
    last = tmp_path / "exp" / "checkpoints" / "last.pt"
    if last.is_file():  # anything saved holds finite weights
        state = torch.load(last, weights_only=True)
        assert all(torch.isfinite(v).all() for v in state["model"].values())


# --------------------------------------------------------------------- 12. a full disk

FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # writes past the limit fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
from audionets.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", ["train", "export"])
def test_a_full_disk_is_one_error_line(command, models, tmp_path):
    if command == "train":
        argv = ["train", str(ROOT / "recipes/toy/config.yaml"), f"experiment_dir={tmp_path}/exp",
                "trainer.device=cpu", "trainer.max_steps=1", "trainer.test=false"]
    else:
        argv = ["export", str(models["sep"]), str(tmp_path / "exported")]
    done = _python(FULL_DISK, *argv)
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr and "cannot write" in last, done.stderr[-3000:]
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and ".tmp" in p.name]
    assert leftovers == []


# ----------------------------------------------------- 3. one training per experiment folder


def test_a_second_training_into_a_running_experiment_is_refused(tmp_path):
    import socket

    from audionets.errors import OutputError
    from audionets.training.trainer import train

    config = _toy_config(tmp_path, "trainer.max_steps=1")
    (tmp_path / "exp").mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "exp" / ".lock").write_text(f"{other.pid} {socket.gethostname()}\n")
        with pytest.raises(OutputError, match=f"in use by another run \\(PID {other.pid} on "):
            train(config)
        assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == [".lock"]
    finally:
        other.kill()
        other.wait()
    # the holder is gone: its lock is taken over, and released when the run ends
    result = train(_toy_config(tmp_path, "trainer.max_steps=1"))
    assert result.status == "max_steps"
    assert not (tmp_path / "exp" / ".lock").exists()


# ------------------------------------------------------------ 13. write-dataset values


@pytest.mark.parametrize("argv, fragment", [
    (["write-dataset", "--dataset", "synth_mix", "--segment-seconds", ".nan"],
     "--segment-seconds: must be a positive number"),
    (["write-dataset", "--dataset", "synth_mix", "--set", "num_speakers=abc"],
     "dataset arguments of synth_mix"),
    (["write-dataset", "--dataset", "synth_mix", "--sample-rate", "99999999999"],
     "--sample-rate: must be a whole number of Hz"),
    (["prepare-tts-mix", "--sample-rate", "1"], "sample_rate: need an integer in [4000, 48000]"),
])
def test_dataset_writers_refuse_bad_values_before_writing(argv, fragment, tmp_path, capsys):
    out = tmp_path / "out"
    where = ["--out", out] if argv[0] == "write-dataset" else [out]
    code, stdout, err = _cli(capsys, *argv, *where)
    assert code == 1 and len(err) == 1 and fragment in err[0], err
    assert not out.exists() or list(out.rglob("*")) == []


def test_main_gives_the_sigterm_handler_back(models, tmp_path, capsys):
    import signal

    before = signal.getsignal(signal.SIGTERM)
    _cli(capsys, "classify", tmp_path / "missing.wav", "--model", models["clf"])
    assert signal.getsignal(signal.SIGTERM) is before


# ------------------------------------------------------------------ 7. symbolic link loops


def _loop(path: Path) -> Path:
    partner = path.with_name(path.name + ".partner")
    path.symlink_to(partner)
    partner.symlink_to(path)
    return path


def test_symlink_loop_as_an_input_is_one_error_and_the_others_go_on(models, tmp_path, capsys):
    loop = _loop(tmp_path / "loop.wav")
    good = tmp_path / "good.wav"
    sf.write(str(good), _noise(0.5), 8000)
    code, out, err = _cli(capsys, "separate", loop, good, "--model", models["sep"])
    assert code == 1 and len(out) == 2 and all(Path(p).is_file() for p in out)
    assert len(err) == 1 and "symbolic link loop" in err[0], err


@pytest.mark.parametrize("where", ["out_dir", "export_target", "export_source",
                                   "experiment_dir"])
def test_symlink_loop_as_an_output_or_model_is_one_error(where, models, tmp_path, capsys):
    loop = _loop(tmp_path / "loop")
    wav = tmp_path / "mix.wav"
    sf.write(str(wav), _noise(0.5), 8000)
    argv = {
        "out_dir": ["separate", wav, "--model", models["sep"], "--out-dir", loop],
        "export_target": ["export", models["sep"], loop],
        "export_source": ["export", loop, tmp_path / "exported"],
        "experiment_dir": ["train", ROOT / "recipes/toy/config.yaml", f"experiment_dir={loop}",
                           "trainer.device=cpu"],
    }[where]
    code, out, err = _cli(capsys, *argv)
    assert code == 1 and out == []
    assert len(err) == 1 and "symbolic link loop" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop", "loop.partner", "mix.wav"]


# ------------------------------------------------- 5. evaluate never overwrites its inputs


@pytest.mark.parametrize("target", ["manifest", "mixture", "model_config"])
def test_evaluate_outputs_are_never_its_inputs_even_with_overwrite(target, models, tmp_path,
                                                                  capsys):
    import hashlib

    data = tmp_path / "ds"
    code, _, err = _cli(capsys, "write-dataset", "--dataset", "synth_mix", "--out", data,
                        "--num-examples", "2", "--sample-rate", "8000", "--segment-seconds", "0.5")
    assert code == 0, err
    path = {"manifest": data / "test.csv",
            "mixture": next((data / "test" / "mix").glob("*.wav")),
            "model_config": models["sep"] / "config.yaml"}[target]
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    option = "--json" if target == "mixture" else "--out"
    code, out, err = _cli(capsys, "evaluate", models["sep"], "--data", "manifest_separation",
                          f"data.root={data}", option, path, "--overwrite", "--device", "cpu",
                          "--no-sdr")
    assert code == 1 and len(err) == 1 and "is an input of this evaluation" in err[0], err
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


# ---------------------------------------------- 6. metrics history as exact as the weights


def _history(folder: Path) -> tuple[list[dict], list[str]]:
    from audionets.training.metrics_log import read_metrics

    rows = read_metrics(folder / "metrics.csv")
    for row in rows:
        row.pop("seconds")
    return rows, sorted(p.name for p in (folder / "checkpoints").glob("best-*.pt"))


def test_resume_after_sigterm_at_the_last_step_validates_it(tmp_path, monkeypatch):
    import signal

    from audionets.training import trainer as trainer_module

    common = ("trainer.max_steps=3", "model.dropout=0.0")  # 4 batches an epoch: stops mid-epoch
    straight = trainer_module.train(_toy_config(tmp_path / "a", *common))
    assert straight.status == "max_steps"
    step = trainer_module.Trainer._optimizer_step

    def signalled(self):
        step(self)
        if self.state.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(trainer_module.Trainer, "_optimizer_step", signalled)
    stopped = trainer_module.train(_toy_config(tmp_path / "b", *common))
    assert stopped.status == "interrupted" and stopped.step == 3
    monkeypatch.setattr(trainer_module.Trainer, "_optimizer_step", step)
    resumed = trainer_module.train(_toy_config(tmp_path / "b", *common), resume=True)
    assert resumed.status == "max_steps"
    rows, best = _history(tmp_path / "a" / "exp")
    assert rows and rows[-1]["epoch"] == 0.75
    assert _history(tmp_path / "b" / "exp") == (rows, best)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_kill_around_the_metrics_row_loses_no_row(when, tmp_path, monkeypatch):
    from audionets.training import metrics_log as metrics_logging
    from audionets.training import trainer as trainer_module

    common = ("trainer.max_epochs=3", "model.dropout=0.0")
    trainer_module.train(_toy_config(tmp_path / "a", *common))
    write = metrics_logging.MetricsLogger._write_csv

    def killed(self):  # the process dies while logging epoch 2's row
        if len(self.rows) == 2 and when == "before":
            raise SystemExit(137)
        write(self)
        if len(self.rows) == 2 and when == "after":
            raise SystemExit(137)

    monkeypatch.setattr(metrics_logging.MetricsLogger, "_write_csv", killed)
    with pytest.raises(SystemExit):
        trainer_module.train(_toy_config(tmp_path / "b", *common))
    monkeypatch.setattr(metrics_logging.MetricsLogger, "_write_csv", write)
    trainer_module.train(_toy_config(tmp_path / "b", *common), resume=True)
    rows, best = _history(tmp_path / "a" / "exp")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert _history(tmp_path / "b" / "exp") == (rows, best)


# ------------------------------------------------------------ 21. one epoch numbering


def test_a_run_stopped_mid_epoch_is_numbered_alike_everywhere(tmp_path, capsys, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="audionets.train")
    code, out, err = _cli(capsys, "train", ROOT / "recipes/toy/config.yaml",
                          f"experiment_dir={tmp_path / 'exp'}", "trainer.device=cpu",
                          "trainer.max_steps=6", "trainer.test=false")  # 4 batches an epoch
    assert code == 0, err
    assert out[-1].startswith("audionets train: max_steps in epoch 2/2, step 6;"), out
    assert any(r.getMessage().startswith("epoch 2/2 (partial: 50% of its batches) (step 6)")
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert any(p.name.startswith("best-epoch002")
               for p in (tmp_path / "exp" / "checkpoints").iterdir())


def test_an_interrupted_write_dataset_leaves_no_wavs_without_a_manifest(tmp_path, monkeypatch):
    from audionets import audio as audio_module
    from audionets.data.manifest import write_dataset
    from audionets.registry import DATASETS

    import audionets.data  # noqa: F401  (registers the datasets)

    dataset = DATASETS.build("synth_mix", split="test", num_examples=4, sample_rate=8000,
                             segment_seconds=0.25)
    save, calls = audio_module.save, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 7:  # Ctrl-C in the third item
            raise KeyboardInterrupt
        save(*args, **kwargs)

    monkeypatch.setattr(audio_module, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(dataset, tmp_path / "ds", "test")
    assert [p for p in (tmp_path / "ds").rglob("*") if p.is_file()] == []


# ------------------------------------------------- 22. a tts_mix pool of other settings


def test_an_existing_speech_pool_of_another_size_is_not_reused_silently(tmp_path):
    import json

    from audionets.data import speech_pool
    from audionets.errors import ConfigError

    made = speech_pool.PoolSettings(num_utterances=30)
    (tmp_path / "pool.json").write_text(json.dumps(made.key()))
    (tmp_path / "manifest.csv").write_text("split,path\n")
    with pytest.raises(ConfigError, match=r"holds a speech pool made with other settings: "
                                          r"num_utterances 30 \(asked: 60\); use another"):
        speech_pool.build(tmp_path, speech_pool.PoolSettings(num_utterances=60))
    assert speech_pool.build(tmp_path, made) == tmp_path / "manifest.csv"
