"""Export to ONNX and TorchScript (audionets.export) and running exported folders
(audionets.inference.backends): every format against the PyTorch model, at lengths that an
exported graph must not have fixed (1, 7, 8000, 33491 samples and one longer than the training
crop), through the library, the CLI, Separator / Classifier and their file APIs; int8 ONNX
against float32.

An ONNX export costs tens of seconds even for a tiny model (torch.export's tracing), so each
model is exported once per module and the tests share the folders: the shipped SepFormer once
(with the CLI), every other family as a tiny model with one block or layer where the family's
code has a loop over them.
"""

import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

import audionets.models  # noqa: F401  (registers the models)
from audionets import hub, metrics
from audionets.cli import main
from audionets.cli.demo import test_mixture as held_out_mixture
from audionets.errors import AudioError, CheckpointError, ConfigError
from audionets.export import export_model, quantize_folder, quantize_onnx
from audionets.hub import ModelMeta
from audionets.inference import Classifier, Separator
from audionets.inference.backends import OnnxModel, load_exported
from audionets.registry import MODELS

onnxruntime = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow  # tens of seconds per ONNX export on a loaded 2-core machine

RATE = 8000
SHIPPED_SEPARATOR = "sepformer-synth-2spk"  # trained on 4 s crops at 8 kHz: 32000 samples
LENGTHS = (1, 7, 8000, 33491, 40000)  # 40000: longer than the 4 s training crop
#: case -> (registered model, tiny kwargs) for each exportable family (the shipped SepFormer
#: stands for its family)
SEPARATORS = {
    "dprnn": ("dprnn", dict(encoder_channels=16, d_model=16, chunk_size=20, num_blocks=1,
                            lstm_hidden_size=8)),
    "sudormrf": ("sudormrf", dict(encoder_channels=16, channels=8, hidden_channels=16,
                                  num_blocks=1, depth=2)),
}
CLASSIFIERS = {
    "tf_cnn": ("tf_cnn", dict(frontend={"name": "logmel", "n_fft": 256, "hop_length": 80,
                                        "n_mels": 16}, channels=[8, 8], pool=[1, 2])),
    "td_cnn": ("td_cnn", dict(channels=[8, 8], kernel_sizes=[80, 3], strides=[4, 1], pool=4)),
    "cnn2d": ("cnn2d", dict(frontend={"name": "logmel", "n_fft": 256, "hop_length": 80,
                                      "n_mels": 16}, channels=[4, 8])),
    "gru": ("rnn_classifier", dict(frontend={"name": "stft", "n_fft": 128, "hop_length": 64},
                                   cell="gru", hidden_size=8, num_layers=2)),
    # the MGU is exported as ONNX GRU operators: two layers, both directions, last-step pooling
    "mgu": ("rnn_classifier", dict(frontend={"name": "stft", "n_fft": 128, "hop_length": 64},
                                   cell="mgu", hidden_size=8, num_layers=2, bidirectional=True,
                                   pooling="last")),
    "attention": ("attention_classifier", dict(d_model=16, num_heads=2, num_layers=1,
                                               ff_dim=32)),
}
LABELS = ["dog", "rain", "siren"]


def _tiny(case, task, tmp_path_factory):
    """``(model, folder)``: a seeded tiny model of ``case`` saved as a pretrained folder."""
    torch.manual_seed(0)
    if task == "separation":
        name, kwargs = SEPARATORS[case]
        kwargs = dict(kwargs, num_sources=2, sample_rate=RATE)
        labels = None
    else:
        name, kwargs = CLASSIFIERS[case]
        kwargs = dict(kwargs, num_classes=len(LABELS), sample_rate=RATE)
        labels = LABELS
    model = MODELS.build(name, **kwargs).eval()
    if task == "classification":  # non-trivial batch-norm statistics
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    folder = tmp_path_factory.mktemp(case)
    meta = ModelMeta(task=task, sample_rate=RATE, labels=labels,
                     config={"model": {"name": name, **kwargs},
                             "data": {"segment_seconds": 1.0}})
    hub.save_pretrained(model, meta, folder)
    return hub.load_model(folder)[0], folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``exported(case, fmt) -> (pytorch model, source folder, exported folder)``, each tiny
    model built and exported once per module."""
    cache = {}

    def get(case, fmt):
        if case not in cache:
            task = "separation" if case in SEPARATORS else "classification"
            cache[case] = _tiny(case, task, tmp_path_factory)
        model, folder = cache[case]
        if (case, fmt) not in cache:
            out = tmp_path_factory.mktemp(f"{case}-{fmt}")
            export_model(*hub.load_model(folder), out, fmt)
            cache[case, fmt] = out
        return model, folder, cache[case, fmt]

    return get


@pytest.fixture(scope="module")
def shipped_onnx(tmp_path_factory):
    """The shipped SepFormer exported with the CLI: ``(pytorch model, onnx folder)``."""
    out = tmp_path_factory.mktemp("export") / "sepformer-onnx"
    assert main(["export", SHIPPED_SEPARATOR, str(out), "--format", "onnx"]) == 0
    return hub.load_model(SHIPPED_SEPARATOR)[0], out


def _inputs(lengths=LENGTHS):
    generator = torch.Generator().manual_seed(3)
    return [torch.randn(2, length, generator=generator) * 0.3 for length in lengths]


def assert_same_outputs(runtime, model, lengths=LENGTHS):
    """Same shapes, and at most 1e-4 of the PyTorch output's peak apart, at every length."""
    for wav in _inputs(lengths):
        with torch.no_grad():
            expected = model(wav)
            got = runtime(wav)
        assert tuple(got.shape) == tuple(expected.shape), wav.shape
        peak = float(expected.abs().max())
        assert float((got - expected).abs().max()) <= 1e-4 * peak, (wav.shape, peak)


def test_onnx_separator_holds_for_any_length(shipped_onnx):
    model, folder = shipped_onnx
    runtime, meta = load_exported(folder)
    assert isinstance(runtime, OnnxModel) and meta.task == "separation"
    assert_same_outputs(runtime, model)


@pytest.mark.parametrize("case, fmt", [
    (case, fmt) for case in [*SEPARATORS, *CLASSIFIERS] for fmt in ("onnx", "torchscript")
])
def test_every_family_exports_for_any_length(exported, case, fmt):
    model, source, folder = exported(case, fmt)
    runtime, meta = load_exported(folder)
    assert meta.task == ("separation" if case in SEPARATORS else "classification")
    assert meta.sample_rate == RATE and (folder / f"model.{fmt}").is_file()
    assert_same_outputs(runtime, model)
    wav = torch.randn(1, 4321)
    if case in SEPARATORS:  # the inference classes run every format as the PyTorch model
        separated = Separator.from_pretrained(folder).separate_batch(wav)
        expected = Separator.from_pretrained(source).separate_batch(wav)
        torch.testing.assert_close(separated, expected, rtol=0,
                                   atol=1e-4 * float(expected.abs().max()))
    else:
        classifier = Classifier.from_pretrained(folder, min_seconds=0.1)
        expected = Classifier.from_pretrained(source, min_seconds=0.1).classify_batch(wav)
        torch.testing.assert_close(classifier.classify_batch(wav), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("norm", ["sepformer", "sudormrf"])
def test_exported_global_norms_stay_exact_on_long_inputs(norm, tmp_path):
    """onnxruntime sums a reduction in one float32 pass: a global norm over the 256 x 20000
    frames of 40 s exported as one reduction (GroupNorm -> InstanceNormalization) was 1e-3 of
    the output's peak off in SuDoRM-RF-lite; the exported norms reduce one axis at a time."""
    import onnxruntime as ort

    from audionets.models.sepformer import GlobalNorm
    from audionets.models.sudormrf import GlobalLayerNorm

    torch.manual_seed(0)
    module = (GlobalNorm(256) if norm == "sepformer" else GlobalLayerNorm(256)).eval()
    with torch.no_grad():  # a trained norm's affine map, and activations far from zero mean
        for p in module.parameters():
            p.uniform_(0.5, 1.5)
    x = torch.randn(1, 256, 20000) * 0.5 + 3.0
    if norm == "sepformer":
        x = x.transpose(1, 2).contiguous()  # channels-last
    path = tmp_path / "norm.onnx"
    length = torch.export.Dim("length", min=2)
    torch.onnx.export(module, (x[:, :, :100] if norm == "sudormrf" else x[:, :100],), path,
                      dynamo=True, input_names=["x"], output_names=["y"],
                      dynamic_shapes=({2 if norm == "sudormrf" else 1: length},))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (exported,) = session.run(["y"], {"x": x.numpy()})
    with torch.no_grad():
        reference = module.double()(x.double()).numpy()
    peak = np.abs(reference).max()
    assert np.abs(exported - reference).max() <= 1e-5 * peak


def _projection_stack(path, width=256, layers=4):
    """An ONNX graph ``x [1, frames, width] -> y`` of ``layers`` LayerNorm -> MatMul -> Add
    (a transformer's projections) with weights drawn as ``nn.Linear`` draws them."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    bound = 1 / np.sqrt(width)
    nodes, weights, x = [], [], "x"
    for i in range(layers):
        weights += [numpy_helper.from_array(np.ones(width, np.float32), f"g{i}"),
                    numpy_helper.from_array(np.zeros(width, np.float32), f"b{i}"),
                    numpy_helper.from_array(
                        rng.uniform(-bound, bound, (width, width)).astype(np.float32), f"w{i}"),
                    numpy_helper.from_array(
                        rng.uniform(-bound, bound, width).astype(np.float32), f"c{i}")]
        nodes += [helper.make_node("LayerNormalization", [x, f"g{i}", f"b{i}"], [f"n{i}"],
                                   axis=-1),
                  helper.make_node("MatMul", [f"n{i}", f"w{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"c{i}"], [f"y{i}"])]
        x = f"y{i}"
    graph = helper.make_graph(
        nodes, "projections",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "frames", width])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, "frames", width])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)


def test_int8_onnx_does_not_saturate_on_wide_projections(tmp_path):
    """onnxruntime's default int8 (signed weights, unsigned activations) saturates its 16-bit
    sums on x86 CPUs without VNNI: 13.7 dB on this graph, which quantize_onnx's unsigned
    weights keep at 33 dB."""
    _projection_stack(tmp_path / "fp32.onnx")
    quantize_onnx(tmp_path / "fp32.onnx", tmp_path / "int8.onnx")
    assert (tmp_path / "int8.onnx").stat().st_size < 0.3 * (tmp_path / "fp32.onnx").stat().st_size
    x = torch.randn(1, 300, 256, generator=torch.Generator().manual_seed(0))
    reference = OnnxModel(tmp_path / "fp32.onnx", "x", "y3")(x)
    quantized = OnnxModel(tmp_path / "int8.onnx", "x", "y3")(x)
    assert metrics.si_snr(quantized.flatten(1), reference.flatten(1)).item() >= 25.0


def test_int8_onnx_of_the_shipped_model_is_within_25_db_of_float32(shipped_onnx, tmp_path):
    _, folder = shipped_onnx
    int8_folder = quantize_folder(folder, tmp_path / "int8")
    config = yaml.safe_load((int8_folder / "config.yaml").read_text())
    assert config["export"]["precision"] == "int8"
    size = (int8_folder / "model.onnx").stat().st_size
    assert size < 0.7 * (folder / "model.onnx").stat().st_size  # the weights are int8
    with pytest.raises(CheckpointError, match="float32 ONNX"):  # int8 of int8
        quantize_folder(int8_folder, tmp_path / "again")
    fp32, int8 = Separator.from_pretrained(folder), Separator.from_pretrained(int8_folder)
    reference = Separator.from_pretrained(SHIPPED_SEPARATOR)
    for index in range(3):  # real mixtures: held-out synth_mix test talkers
        item = held_out_mixture(reference, index)
        mix, sources = item["mix"][None], item["sources"][None]
        expected, quantized = fp32.separate_batch(mix), int8.separate_batch(mix)  # [1, T, S]
        assert quantized.shape == expected.shape == (1, mix.shape[-1], 2)
        assert metrics.si_snr(quantized.transpose(1, 2), expected.transpose(1, 2)).min() >= 25.0
        # separation quality against the true sources (negative PIT SI-SNR, dB)
        losses = [metrics.pit(metrics.pairwise_neg_si_snr, estimate.transpose(1, 2), sources)[0]
                  for estimate in (expected, quantized)]
        assert abs(float(losses[0] - losses[1])) <= 0.5


def test_exported_config_says_how_to_feed_the_graph(shipped_onnx):
    _, folder = shipped_onnx
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["sample_rate"] == 8000 and config["task"] == "separation"
    assert config["model"]["num_sources"] == 2
    section = config["export"]
    assert section["format"] == "onnx" and section["file"] == "model.onnx"
    assert section["precision"] == "float32" and section["audionets_version"]
    assert section["inputs"] == [{"name": "mix", "dtype": "float32", "shape": ["batch", "time"]}]
    assert section["outputs"][0]["name"] == "sources"
    # any runtime can feed it from the config alone
    import onnxruntime as ort

    session = ort.InferenceSession(str(folder / section["file"]))
    assert [i.name for i in session.get_inputs()] == ["mix"]
    (out,) = session.run(["sources"], {"mix": np.zeros((3, 555), np.float32)})
    assert out.shape == (3, 2, 555)


def test_separator_runs_an_onnx_folder_like_the_pytorch_model(shipped_onnx, tmp_path):
    _, folder = shipped_onnx
    rate = 16000  # not the model's: resampled on the way in and out
    mix = np.random.default_rng(0).standard_normal(rate * 3).astype(np.float32) * 0.1
    sf.write(tmp_path / "mix.wav", mix, rate, subtype="FLOAT")
    outputs = {}
    for name, source in (("torch", SHIPPED_SEPARATOR), ("onnx", folder)):
        separator = Separator.from_pretrained(source)
        assert separator.num_sources == 2 and separator.sample_rate == 8000
        # chunks of 1 s: stitching of several chunks runs through the backend too
        paths = separator.separate_file(tmp_path / "mix.wav", out_dir=tmp_path / name,
                                        chunk_seconds=1.0, overlap_seconds=0.25)
        outputs[name] = [sf.read(p, dtype="float32") for p in paths]
    for (torch_wav, torch_rate), (onnx_wav, onnx_rate) in zip(outputs["torch"], outputs["onnx"]):
        assert onnx_rate == torch_rate == rate and onnx_wav.shape == torch_wav.shape == mix.shape
        assert np.abs(onnx_wav - torch_wav).max() <= 1e-4 * np.abs(torch_wav).max()


def test_separate_cli_with_an_onnx_folder_reports_bad_files_and_goes_on(shipped_onnx, tmp_path,
                                                                         capsys):
    _, folder = shipped_onnx
    good = tmp_path / "good.wav"
    sf.write(good, np.random.default_rng(1).standard_normal(4000).astype(np.float32) * 0.1, 8000)
    bad = tmp_path / "nan.wav"
    sf.write(bad, np.full(4000, np.nan, np.float32), 8000, subtype="FLOAT")
    code = main(["separate", str(bad), str(good), "--model", str(folder),
                 "--out-dir", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 1
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1 and "nan.wav" in errors[0] and "NaN" in errors[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good_s1.wav", "good_s2.wav"]
    with pytest.raises(ConfigError, match="exported model"):
        Separator.from_pretrained(folder, quantize="int8")
    with pytest.raises(AudioError, match="NaN"):
        Separator.from_pretrained(folder).separate_batch(torch.full((1, 100), float("nan")))


def test_classifier_runs_an_onnx_folder_like_the_pytorch_model(exported, tmp_path):
    _, folder, onnx_folder = exported("tf_cnn", "onnx")
    wav = np.random.default_rng(2).standard_normal(RATE * 3).astype(np.float32) * 0.1
    sf.write(tmp_path / "clip.wav", wav, RATE)
    reference = Classifier.from_pretrained(folder)
    onnx = Classifier.from_pretrained(onnx_folder)
    assert onnx.labels == LABELS and onnx.window_seconds == reference.window_seconds == 1.0
    top_torch = reference.classify_file(tmp_path / "clip.wav", top_k=3)
    top_onnx = onnx.classify_file(tmp_path / "clip.wav", top_k=3)
    assert [label for label, _ in top_onnx] == [label for label, _ in top_torch]
    np.testing.assert_allclose([p for _, p in top_onnx], [p for _, p in top_torch], atol=1e-5)
    assert main(["classify", str(tmp_path / "clip.wav"), "--model", str(onnx_folder)]) == 0


def test_an_exported_folder_is_not_a_pytorch_model_folder(shipped_onnx, tmp_path):
    _, folder = shipped_onnx
    with pytest.raises(CheckpointError, match="exported"):
        hub.load_model(folder)
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(CheckpointError, match="model.onnx"):
        Separator.from_pretrained(broken)
    (broken / "model.onnx").unlink()
    with pytest.raises(CheckpointError, match="graph file missing"):
        Separator.from_pretrained(broken)


def test_export_cli_refuses_to_overwrite_and_checks_options(shipped_onnx, tmp_path, capsys):
    _, folder = shipped_onnx
    before = (folder / "model.onnx").read_bytes()
    assert main(["export", SHIPPED_SEPARATOR, str(folder), "--format", "onnx"]) == 1
    assert "already holds" in capsys.readouterr().err
    assert (folder / "model.onnx").read_bytes() == before
    assert main(["export", SHIPPED_SEPARATOR, str(tmp_path / "ts"), "--format", "torchscript",
                 "--precision", "int8"]) == 1
    assert "--format onnx" in capsys.readouterr().err
    assert not (tmp_path / "ts").exists()


def test_int8_export_checks_float32_then_writes_only_the_int8_folder(exported, tmp_path,
                                                                     monkeypatch):
    import audionets.export

    _, source, onnx_folder = exported("tf_cnn", "onnx")
    # the graph the exporter would write (exported once above), so that no second export runs
    monkeypatch.setattr(audionets.export, "write_onnx",
                        lambda model, path, task, rate: shutil.copy(onnx_folder / "model.onnx",
                                                                    path))
    out = export_model(*hub.load_model(source), tmp_path / "int8", "onnx", precision="int8")
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "model.onnx"]
    assert yaml.safe_load((out / "config.yaml").read_text())["export"]["precision"] == "int8"
    runtime, meta = load_exported(out)
    assert meta.labels == LABELS and tuple(runtime(torch.randn(2, 4321)).shape) == (2, 3)


def test_export_average_with_writes_the_mean_of_the_weights(tmp_path, tmp_path_factory, capsys):
    # two runs of one tiny classifier (different seeds) -> their element-wise mean, BatchNorm
    # statistics included; another architecture is refused in one line
    first, first_folder = _tiny("td_cnn", "classification", tmp_path_factory)
    second = MODELS.build(CLASSIFIERS["td_cnn"][0], **dict(CLASSIFIERS["td_cnn"][1],
                          num_classes=len(LABELS), sample_rate=RATE)).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for tensor in second.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.rand_like(tensor))
    second_folder = tmp_path / "second"
    hub.save_pretrained(second, hub.load_model(first_folder)[1], second_folder)
    out = tmp_path / "mean"
    assert main(["export", str(first_folder), str(out), "--average-with",
                 str(second_folder)]) == 0
    mean = hub.load_model(out)[0].state_dict()
    for key, value in first.state_dict().items():
        if value.is_floating_point():
            expected = (value.double() + second.state_dict()[key].double()) / 2
            torch.testing.assert_close(mean[key].double(), expected, rtol=0, atol=1e-6)
        else:
            assert torch.equal(mean[key], value)
    other_folder = _tiny("tf_cnn", "classification", tmp_path_factory)[1]
    capsys.readouterr()
    assert main(["export", str(first_folder), str(tmp_path / "bad"), "--average-with",
                 str(other_folder)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(other_folder) in err and "model config" in err
    assert not (tmp_path / "bad" / "model.safetensors").exists()


def test_an_onnx_folder_averages_shifted_passes_like_the_pytorch_model(shipped_onnx):
    """The encoder hop of an exported model comes from the architecture in its config."""
    _, folder = shipped_onnx
    mix = torch.randn(1, 4000, generator=torch.Generator().manual_seed(1)) * 0.1
    onnx = Separator.from_pretrained(folder, shifts=2)
    torch_sep = Separator.from_pretrained(SHIPPED_SEPARATOR, shifts=2)
    assert onnx.offsets == torch_sep.offsets == [0, torch_sep.model.hop_length // 2]
    expected = torch_sep.separate_batch(mix)
    got = onnx.separate_batch(mix)
    assert float((got - expected).abs().max()) <= 1e-4 * float(expected.abs().max())
