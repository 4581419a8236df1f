"""The bad-input table: every way a user can hand ``separate`` / ``classify`` a bad file,
output folder or model, through the CLI and through the Python API.

For each bad input the CLI must exit non-zero with exactly one stderr line naming the file and
the problem (no traceback), leave no output behind for that input, leave the input unchanged,
and still process the good file given in the same call. Inputs that are unusual but valid
(very short, silent, clipped, 44.1/48 kHz 24-bit stereo FLAC, 6 channels) must just work.
"""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

import audionets.models  # noqa: F401  (registers the models)
from audionets import hub
from audionets.cli import main
from audionets.errors import AudioError, CheckpointError, OutputError
from audionets.inference import Classifier, Separator
from audionets.registry import MODELS

RATE = 8000
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
TINY_SEP = dict(name="sepformer", encoder_channels=16, d_model=16, chunk_size=20, num_blocks=1,
                intra_layers=1, inter_layers=1, nhead=2, d_ffn=32)
TINY_CNN = dict(name="td_cnn", num_classes=3, sample_rate=RATE, channels=[8, 8],
                kernel_sizes=[40, 3], strides=[4, 1], pool=4)
LABELS = ["bell", "dog", "siren"]

UNSUPPORTED_SPEECHBRAIN = """\
encoder: !new:speechbrain.lobes.models.dual_path.Encoder
    kernel_size: 16
    out_channels: 16
masknet: !new:speechbrain.lobes.models.conv_tasnet.MaskNet
    N: 16
    B: 16
    H: 16
    P: 3
    X: 2
    R: 1
    C: 2
decoder: !new:speechbrain.lobes.models.dual_path.Decoder
    in_channels: 16
    out_channels: 1
    kernel_size: 16
    stride: 8
    bias: False
"""


def _save(folder: Path, spec: dict, task: str, labels=None, weights_spec: dict | None = None):
    build = dict(weights_spec or spec)
    model = MODELS.build(build.pop("name"), **build)
    meta = hub.ModelMeta(task=task, sample_rate=RATE, labels=labels, config={"model": spec})
    return hub.save_pretrained(model, meta, folder)


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random model folders, good and broken, made once for the whole table."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    folders = {
        "sep": _save(root / "sep", TINY_SEP, "separation"),
        "clf": _save(root / "clf", TINY_CNN, "classification", LABELS),
    }
    for kind, spec, task, labels in (("sep", TINY_SEP, "separation", None),
                                     ("clf", TINY_CNN, "classification", LABELS)):
        missing = _save(root / f"{kind}_missing_weights", spec, task, labels)
        (missing / hub.WEIGHTS).unlink()
        newer = _save(root / f"{kind}_newer", spec, task, labels)
        config = yaml.safe_load((newer / hub.CONFIG).read_text())
        config["audionets_version"] = "99.0.0"
        (newer / hub.CONFIG).write_text(yaml.safe_dump(config))
        wide = {**spec, "encoder_channels": 32} if kind == "sep" else {**spec, "channels": [8, 16]}
        folders[f"{kind}_missing_weights"] = missing
        folders[f"{kind}_newer"] = newer
        folders[f"{kind}_wrong_shape"] = _save(root / f"{kind}_wrong_shape", spec, task, labels,
                                               weights_spec=wide)
    speechbrain = root / "speechbrain_convtasnet"
    speechbrain.mkdir()
    (speechbrain / "hyperparams.yaml").write_text(UNSUPPORTED_SPEECHBRAIN)
    folders["sep_speechbrain_unsupported"] = speechbrain
    return folders


# ------------------------------------------------------------------------------ input files


def _wav(path: Path, data: np.ndarray, rate: int = RATE, subtype: str = "FLOAT") -> Path:
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def _noise(seconds: float, rate: int = RATE, channels: int | None = None) -> np.ndarray:
    shape = (int(seconds * rate),) if channels is None else (int(seconds * rate), channels)
    return (0.1 * np.random.default_rng(0).standard_normal(shape)).astype(np.float32)


def _unreadable(d: Path) -> Path:
    path = _wav(d / "locked.wav", _noise(0.2))
    path.chmod(0)
    return path


def _truncated(d: Path) -> Path:
    path = _wav(d / "truncated.wav", _noise(0.5), subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _nan(d: Path) -> Path:
    data = _noise(0.3)
    data[100] = np.nan
    data[200] = np.inf
    return _wav(d / "nan.wav", data)


def _square(d: Path) -> Path:
    t = np.arange(RATE // 2) / RATE
    return _wav(d / "square.wav", np.sign(np.sin(2 * np.pi * 220 * t)), subtype="PCM_16")


@dataclass
class Case:
    id: str
    make: Callable[[Path], Path]
    error: type | None  # None: must work
    match: str = ""  # expected fragment of the one-line message
    root_skip: bool = False  # permission bits do not stop root


def _bytes(name: str, content: bytes) -> Callable[[Path], Path]:
    """A maker of a file ``name`` holding ``content``."""

    def make(folder: Path) -> Path:
        (folder / name).write_bytes(content)
        return folder / name

    return make


def _directory(folder: Path) -> Path:
    (folder / "folder.wav").mkdir()
    return folder / "folder.wav"


JUNK = np.random.default_rng(1).bytes(4096)
INPUT_CASES = [
    Case("missing", lambda d: d / "missing.wav", AudioError, "file does not exist"),
    Case("directory", _directory, AudioError, "is a directory"),
    Case("no_permission", _unreadable, AudioError, "no read permission", root_skip=True),
    Case("zero_bytes", _bytes("empty.wav", b""), AudioError, "zero-byte file"),
    Case("random_bytes", _bytes("noise.wav", JUNK), AudioError, "not a readable audio file"),
    Case("truncated_wav", _truncated, AudioError, "truncated file"),
    Case("text_as_flac", _bytes("notes.flac", b"hello, not audio\n" * 50), AudioError,
         "not a readable audio file"),
    Case("junk_mp4", _bytes("video.mp4", b"\x00\x00\x00\x18ftypmp42" + JUNK), AudioError,
         "not a readable audio file"),
    Case("unknown_suffix", _bytes("data.xyz", b"XYZ1" * 500), AudioError,
         "not a readable audio file"),
    Case("nan_inf", _nan, AudioError, "NaN or Inf samples at t=0.013s"),
    Case("hundredth_second", lambda d: _wav(d / "tiny.wav", _noise(0.01)), None),
    Case("silence", lambda d: _wav(d / "silence.wav", np.zeros(RATE // 4, np.float32)), None,
         "input is silent"),
    Case("clipped_square", _square, None),
    Case("flac_44k_stereo_24bit", lambda d: _wav(d / "cd.flac", _noise(0.3, 44100, 2), 44100,
                                                 "PCM_24"), None),
    Case("flac_48k_stereo_24bit", lambda d: _wav(d / "studio.flac", _noise(0.3, 48000, 2), 48000,
                                                 "PCM_24"), None),
    Case("six_channels", lambda d: _wav(d / "surround.wav", _noise(0.3, RATE, 6)), None),
]


def _case_params(cases):
    return [pytest.param(c, id=c.id, marks=pytest.mark.skipif(
        c.root_skip and IS_ROOT, reason="root reads files regardless of permissions"))
        for c in cases]


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _good(folder: Path) -> Path:
    return _wav(folder / "good.wav", _noise(0.25))


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def _assert_one_error_line(err_lines, command, *fragments):
    assert len(err_lines) == 1, err_lines
    line = err_lines[0]
    assert line.startswith(f"audionets {command}: error: "), line
    assert "Traceback" not in line
    for fragment in fragments:
        assert fragment in line, (fragment, line)


# ------------------------------------------------------------------------- separate: inputs


@pytest.mark.parametrize("case", _case_params(INPUT_CASES))
def test_separate_cli_input_table(case, models, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    out_dir = tmp_path / "out"
    bad = case.make(inputs)
    good = _good(inputs)
    before = _digest(bad)
    code, out, err = _run(capsys, ["separate", str(bad), str(good), "--model", str(models["sep"]),
                                   "--out-dir", str(out_dir)])
    assert _digest(bad) == before  # the input is never modified
    good_outputs = [out_dir / "good_s1.wav", out_dir / "good_s2.wav"]
    assert all(p.is_file() for p in good_outputs) and out[-2:] == [str(p) for p in good_outputs]
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".")]  # no temporaries
    if case.error is not None:
        assert code == 1
        _assert_one_error_line(err, "separate", str(bad), case.match)
        assert sorted(out_dir.iterdir()) == good_outputs  # nothing for the bad input
        return
    assert code == 0 and len(out) == 4
    info = sf.info(str(bad))
    for line in out[:2]:
        written = sf.info(line)
        assert Path(line).name.startswith(bad.stem + "_s")
        assert (written.samplerate, written.frames, written.channels) == (
            info.samplerate, info.frames, 1)
    if case.match:  # silence: one warning line, outputs all zero
        assert len(err) == 1 and "warning" in err[0] and case.match in err[0] and str(bad) in err[0]
        assert not np.any(sf.read(out[0])[0])
    else:
        assert err == []


@pytest.mark.parametrize("case", _case_params(INPUT_CASES))
def test_separator_api_input_table(case, models, tmp_path):
    separator = Separator.from_pretrained(models["sep"])
    bad = case.make(tmp_path)
    if case.error is None:
        with pytest.warns(UserWarning, match=case.match) if case.match else nullcontext():
            paths = separator.separate_file(bad, out_dir=tmp_path / "out", progress=False)
        assert len(paths) == 2 and all(p.is_file() for p in paths)
        return
    with pytest.raises(case.error, match=case.match) as caught:
        separator.separate_file(bad, out_dir=tmp_path / "out", progress=False)
    assert "\n" not in str(caught.value) and str(bad) in str(caught.value)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_separate_each_channel_writes_one_set_per_channel(models, tmp_path, capsys):
    src = _wav(tmp_path / "surround.wav", _noise(0.3, RATE, 6))
    code, out, err = _run(capsys, ["separate", str(src), "--each-channel", "--model",
                                   str(models["sep"])])
    assert code == 0 and err == []
    assert [Path(p).name for p in out] == [f"surround_ch{c}_s{k}.wav"
                                           for c in range(1, 7) for k in (1, 2)]


# ------------------------------------------------------------------------ separate: outputs


def test_out_dir_that_is_a_file(models, tmp_path, capsys):
    src, blocker = _good(tmp_path), tmp_path / "out"
    blocker.write_text("not a folder")
    code, out, err = _run(capsys, ["separate", str(src), "--model", str(models["sep"]),
                                   "--out-dir", str(blocker)])
    assert code == 1 and out == []
    _assert_one_error_line(err, "separate", str(blocker), "output folder is an existing file")
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders")
def test_out_dir_not_writable(models, tmp_path, capsys):
    src, out_dir = _good(tmp_path), tmp_path / "locked"
    out_dir.mkdir()
    out_dir.chmod(0o555)
    try:
        code, out, err = _run(capsys, ["separate", str(src), "--model", str(models["sep"]),
                                       "--out-dir", str(out_dir)])
    finally:
        out_dir.chmod(0o755)
    assert code == 1 and out == [] and list(out_dir.iterdir()) == []
    _assert_one_error_line(err, "separate", str(out_dir), "not writable")


def test_out_dir_not_writable_as_any_user(models, tmp_path, capsys, monkeypatch):
    # os.access says no (root passes every permission check, so CI could not test this)
    src, out_dir = _good(tmp_path), tmp_path / "locked"
    out_dir.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False
                        if Path(path) == out_dir and mode & os.W_OK else real(path, mode, *a, **k))
    code, out, err = _run(capsys, ["separate", str(src), "--model", str(models["sep"]),
                                   "--out-dir", str(out_dir)])
    assert code == 1 and out == [] and list(out_dir.iterdir()) == []
    _assert_one_error_line(err, "separate", str(out_dir), "not writable")


def test_inputs_with_the_same_stem_are_refused_before_any_work(models, tmp_path, capsys):
    # a/mix.wav and b/mix.wav would both write out/mix_s1.wav: with --overwrite the second
    # would silently replace the first one's results
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first = _wav(tmp_path / "a" / "mix.wav", _noise(0.2))
    second = _wav(tmp_path / "b" / "mix.wav", _noise(0.2))
    out_dir = tmp_path / "out"
    code, out, err = _run(capsys, ["separate", str(first), str(second), "--overwrite",
                                   "--out-dir", str(out_dir), "--model", str(models["sep"])])
    assert code == 1 and out == [] and not out_dir.exists()
    _assert_one_error_line(err, "separate", str(first), str(second), "mix_s1.wav")
    # the same collision without --out-dir: two formats of one take in one folder
    flac = tmp_path / "a" / "mix.flac"
    sf.write(str(flac), _noise(0.2), RATE)
    code, out, err = _run(capsys, ["separate", str(first), str(flac),
                                   "--model", str(models["sep"])])
    assert code == 1 and out == [] and not (tmp_path / "a" / "mix_s1.wav").exists()
    _assert_one_error_line(err, "separate", str(first), str(flac))
    # in different output folders they do not collide
    code, out, err = _run(capsys, ["separate", str(first), str(second),
                                   "--model", str(models["sep"])])
    assert code == 0 and len(out) == 4


def test_a_file_given_twice_is_refused(models, tmp_path, capsys):
    src = _good(tmp_path)
    code, out, err = _run(capsys, ["separate", str(src), str(tmp_path / "." / src.name),
                                   "--model", str(models["sep"])])
    assert code == 1 and out == []
    _assert_one_error_line(err, "separate", "given twice")


def test_existing_output_refused_then_overwritten(models, tmp_path, capsys):
    src = _good(tmp_path)
    other = _wav(tmp_path / "other.wav", _noise(0.2))
    existing = tmp_path / "good_s2.wav"
    existing.write_bytes(b"keep me")
    argv = ["separate", str(src), str(other), "--model", str(models["sep"])]
    code, out, err = _run(capsys, argv)
    assert code == 1
    _assert_one_error_line(err, "separate", str(src), str(existing), "--overwrite")
    assert existing.read_bytes() == b"keep me" and not (tmp_path / "good_s1.wav").exists()
    assert out == [str(tmp_path / "other_s1.wav"), str(tmp_path / "other_s2.wav")]
    code, out, err = _run(capsys, argv[:2] + ["--overwrite"] + argv[3:])
    assert code == 0 and err == [] and sf.info(str(existing)).frames == RATE // 4


def test_output_that_is_another_input_is_always_refused(models, tmp_path, capsys):
    # "x_s1.wav" is an input: separating "x.wav" into the same folder would overwrite it
    src = _wav(tmp_path / "x.wav", _noise(0.2))
    victim = _wav(tmp_path / "x_s1.wav", _noise(0.2))
    before = _digest(victim)
    code, out, err = _run(capsys, ["separate", str(src), str(victim), "--overwrite",
                                   "--model", str(models["sep"])])
    assert code == 1 and _digest(victim) == before
    _assert_one_error_line(err, "separate", str(src), "would overwrite an input file")
    assert out == [str(tmp_path / "x_s1_s1.wav"), str(tmp_path / "x_s1_s2.wav")]
    assert not (tmp_path / "x_s2.wav").exists()


def test_output_path_resolving_to_the_input_is_always_refused(models, tmp_path, capsys):
    # a link named like the planned output, pointing at the input itself
    src = _good(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "good_s1.wav").symlink_to(src)
    before = _digest(src)
    code, out, err = _run(capsys, ["separate", str(src), "--overwrite", "--out-dir", str(out_dir),
                                   "--model", str(models["sep"])])
    assert code == 1 and out == [] and _digest(src) == before
    _assert_one_error_line(err, "separate", str(src), "would overwrite an input file")
    assert sorted(p.name for p in out_dir.iterdir()) == ["good_s1.wav"]


# -------------------------------------------------------------------------- classify: inputs


@pytest.mark.parametrize("case", _case_params(INPUT_CASES))
def test_classify_cli_input_table(case, models, tmp_path, capsys):
    bad = case.make(tmp_path)
    good = _good(tmp_path)
    before = _digest(bad)
    code, out, err = _run(capsys, ["classify", str(bad), str(good), "--model", str(models["clf"]),
                                   "--top-k", "2"])
    assert _digest(bad) == before
    assert out[-1].startswith(f"{good}\t") and len(out[-1].split("\t")[1].split(") ")) == 2
    if case.error is not None:
        assert code == 1 and len(out) == 1
        _assert_one_error_line(err, "classify", str(bad), case.match)
        return
    assert code == 0 and len(out) == 2 and out[0].startswith(f"{bad}\t")
    labels = [part.split(" (")[0] for part in out[0].split("\t")[1].split(") ")]
    assert set(labels) <= set(LABELS)
    assert (len(err) == 1 and case.match in err[0]) if case.match else err == []


@pytest.mark.parametrize("case", _case_params(INPUT_CASES))
def test_classifier_api_input_table(case, models, tmp_path):
    classifier = Classifier.from_pretrained(models["clf"])
    bad = case.make(tmp_path)
    if case.error is None:
        with pytest.warns(UserWarning, match=case.match) if case.match else nullcontext():
            top = classifier.classify_file(bad, top_k=3)
        assert sorted(label for label, _ in top) == LABELS
        assert abs(sum(p for _, p in top) - 1) < 1e-5
        return
    with pytest.raises(case.error, match=case.match) as caught:
        classifier.classify_file(bad)
    assert "\n" not in str(caught.value) and str(bad) in str(caught.value)


def test_classify_json_lines(models, tmp_path, capsys):
    import json

    good = _good(tmp_path)
    code, out, err = _run(capsys, ["classify", str(good), "--json", "--top-k", "3",
                                   "--model", str(models["clf"])])
    record = json.loads(out[0])
    assert code == 0 and err == [] and record["file"] == str(good)
    assert sorted(p["label"] for p in record["predictions"]) == LABELS


# --------------------------------------------------------------------------------- models

MODEL_CASES = [
    ("sep_missing_weights", "separate", "weights file missing"),
    ("sep_newer", "separate", "newer than the installed"),
    ("sep_wrong_shape", "separate", "has shape"),
    ("sep_speechbrain_unsupported", "separate", "unsupported SpeechBrain model"),
    ("clf", "separate", "is a classification model"),
    ("clf_missing_weights", "classify", "weights file missing"),
    ("clf_newer", "classify", "newer than the installed"),
    ("clf_wrong_shape", "classify", "has shape"),
    ("sep", "classify", "is a separation model"),
]


MODEL_IDS = [f"{name}-{command}" for name, command, _ in MODEL_CASES]


@pytest.mark.parametrize("name, command, match", MODEL_CASES, ids=MODEL_IDS)
def test_bad_model_cli(name, command, match, models, tmp_path, capsys):
    src = _good(tmp_path)
    before = _digest(src)
    code, out, err = _run(capsys, [command, str(src), "--model", str(models[name])])
    assert code == 1 and out == [] and _digest(src) == before
    _assert_one_error_line(err, command, str(models[name]), match)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.wav"]


@pytest.mark.parametrize("name, command, match", MODEL_CASES, ids=MODEL_IDS)
def test_bad_model_api(name, command, match, models):
    cls = Separator if command == "separate" else Classifier
    with pytest.raises(CheckpointError, match=match):
        cls.from_pretrained(models[name])


def test_unknown_model_name(tmp_path, capsys):
    code, out, err = _run(capsys, ["separate", str(_good(tmp_path)), "--model", "no-such-model"])
    assert code == 1
    _assert_one_error_line(err, "separate", "no-such-model",
                           "no such file, folder or shipped model")


@pytest.mark.parametrize("where", ["train", "model", "speechbrain"])
def test_binary_config_file_is_one_line(where, tmp_path, capsys):
    junk = bytes(range(128, 256)) * 3
    if where == "train":
        (tmp_path / "c.yaml").write_bytes(junk)
        argv, named = ["train", str(tmp_path / "c.yaml")], tmp_path / "c.yaml"
    else:
        folder = tmp_path / "m"
        folder.mkdir()
        named = folder / ("config.yaml" if where == "model" else "hyperparams.yaml")
        named.write_bytes(junk)
        if where == "model":
            (folder / "model.safetensors").write_bytes(b"")
        argv = ["separate", str(_good(tmp_path)), "--model", str(folder)]
    code, out, err = _run(capsys, argv)
    assert code == 1 and out == []
    _assert_one_error_line(err, argv[0], str(named), "not a UTF-8 text file")


def test_api_output_errors_are_output_errors(models, tmp_path):
    separator = Separator.from_pretrained(models["sep"])
    src = _good(tmp_path)
    (tmp_path / "good_s1.wav").write_bytes(b"x")
    with pytest.raises(OutputError, match="output exists"):
        separator.separate_file(src, progress=False)


# ------------------------------------------------------------- other commands: output paths

TOY_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "toy" / "config.yaml"
OUTPUT_CASES = {
    "train": ["train", str(TOY_RECIPE), "experiment_dir={blocker}/run"],
    "write-dataset": ["write-dataset", "--dataset", "synth_mix", "--out", "{blocker}"],
    "prepare-tts-mix": ["prepare-tts-mix", "{blocker}/pool"],
    "prepare-kws-tts": ["prepare-kws-tts", "{blocker}/words"],
    "export": ["export", "cnn-synth-events", "{blocker}/model"],
}


@pytest.mark.parametrize("argv", OUTPUT_CASES.values(), ids=OUTPUT_CASES.keys())
def test_output_folder_under_a_file_is_one_line_before_any_work(argv, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("keep me")
    code, out, err = _run(capsys, [a.format(blocker=blocker) for a in argv])
    assert code == 1
    _assert_one_error_line(err, argv[0], str(blocker), "is an existing file")
    assert blocker.read_text() == "keep me" and sorted(tmp_path.iterdir()) == [blocker]


TASK_MISMATCH = {
    "evaluate-classifier-on-mixtures": (
        ["evaluate", "cnn-synth-events", "--data", "synth_mix", "--limit", "1"],
        "a classification model needs wav, label"),
    "evaluate-separator-on-clips": (
        ["evaluate", "sepformer-synth-2spk", "--data", "synth_events", "--limit", "1"],
        "a separation model needs mix, sources"),
    "train-classifier-on-mixtures": (
        ["train", str(TOY_RECIPE.parents[1] / "synth_events" / "config.yaml"),
         "data.name=synth_mix", "experiment_dir={tmp}/run"],
        "data.name=synth_mix: gives items with id, mix, sources"),
}


@pytest.mark.parametrize("argv, match", TASK_MISMATCH.values(), ids=TASK_MISMATCH.keys())
def test_model_and_data_of_different_tasks_is_one_line(argv, match, tmp_path, capsys):
    code, out, err = _run(capsys, [a.format(tmp=tmp_path) for a in argv])
    assert code == 1 and out == []
    _assert_one_error_line(err, argv[0], match)
    assert list(tmp_path.iterdir()) == []


def test_evaluate_refuses_unusable_outputs_before_evaluating(tmp_path, capsys):
    argv = ["evaluate", "cnn-synth-events", "--data", "synth_events", "--limit", "1"]
    code, out, err = _run(capsys, argv + ["--out", str(tmp_path)])
    assert code == 1 and out == []
    _assert_one_error_line(err, "evaluate", str(tmp_path), "is a folder; give a file name")
    same = str(tmp_path / "r.csv")
    code, out, err = _run(capsys, argv + ["--out", same, "--json", same])
    assert code == 1 and out == []
    _assert_one_error_line(err, "evaluate", "--out and --json name the same file")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------- real process, exit codes


def _subprocess(args, cwd):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "audionets", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


@pytest.mark.parametrize("command", ["separate", "classify"])
def test_real_process_exit_code_and_no_traceback(command, models, tmp_path):
    bad, good = _nan(tmp_path), _good(tmp_path)
    model = models["sep" if command == "separate" else "clf"]
    proc = _subprocess([command, str(bad), str(good), "--model", str(model)], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"audionets {command}: error: {bad}: contains NaN or Inf samples at t=0.013s; "
        "repair or drop the file"]
    written = str(tmp_path / "good_s1.wav") if command == "separate" else f"{good}\t"
    assert written in proc.stdout


def test_debug_lets_the_exception_through(models, tmp_path):
    """With --debug the error propagates (Python prints the traceback) instead of one line."""
    with pytest.raises(AudioError, match="missing.wav: file does not exist"):
        main(["--debug", "separate", str(tmp_path / "missing.wav"), "--model", str(models["sep"])])
    with pytest.raises(CheckpointError, match="weights file missing"):
        main(["--debug", "classify", str(_good(tmp_path)), "--model",
              str(models["clf_missing_weights"])])


def test_overrides_go_before_or_after_options_and_unknown_words_are_refused(capsys):
    from audionets.cli import build_parser, parse_args

    parser = build_parser()
    args = parse_args(parser, ["train", "c.yaml", "a=1", "--resume", "b=2", "c.d=[1, 2]"])
    assert args.resume and args.overrides == ["a=1", "b=2", "c.d=[1, 2]"]
    args = parse_args(parser, ["evaluate", "m", "--data", "c.yaml", "data.x=1", "--limit", "3",
                               "data.y=2"])
    assert args.overrides == ["data.x=1", "data.y=2"] and args.limit == 3
    for argv in (["train", "c.yaml", "--resume", "--bogus"], ["train", "c.yaml", "--resume", "x"],
                 ["separate", "a.wav", "--device", "cpu", "k=v"]):
        with pytest.raises(SystemExit) as exit_info:
            parse_args(parser, argv)
        assert exit_info.value.code == 2
        assert "unrecognized arguments" in capsys.readouterr().err


def test_first_line_quotes_one_line_of_a_library_error():
    from audionets.errors import first_line

    assert first_line(ValueError("\n  bad shape\nTraceback detail\n")) == "bad shape"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(RuntimeError("x" * 300), 160) == "x" * 160


def test_check_choice_names_the_key_and_the_choices():
    from audionets.errors import ConfigError, check_choice

    check_choice("data.mode", "min", ("min", "max"))
    with pytest.raises(ConfigError, match=r"^data\.num_speakers: 4 is not one of: 2, 3$"):
        check_choice("data.num_speakers", 4, (2, 3))


def test_progress_bar_shows_on_stderr_calls_back_or_stays_silent(capsys):
    from audionets.utils import progress_bar

    calls = []
    bar = progress_bar(5, "job", lambda done, total: calls.append((done, total)), initial=2)
    bar.update(1), bar.update(2), bar.close()
    assert calls == [(3, 5), (5, 5)]
    silent = progress_bar(5, "job", False)
    silent.update(5), silent.close()
    assert capsys.readouterr().err == ""
    shown = progress_bar(4, "job", True, unit="file", initial=1)
    shown.update(3), shown.close()
    assert "job" in capsys.readouterr().err and shown.n == 4
