"""SpeechBrain SepFormer/DPRNN folders <-> our SepFormer: numerical equivalence and errors.

The reference modules are built by SpeechBrain itself (hyperpyyaml instantiates the
hyperparams.yaml each test writes), so the YAML is valid SpeechBrain syntax and the reference
is SpeechBrain's own code, run as ``SepformerSeparation.separate_batch`` runs it.
"""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from audionets.errors import CheckpointError
from audionets.interop.speechbrain import load_sepformer_folder, read_hyperparams, save_sepformer_folder
from audionets.models import build_model
from audionets.models.sepformer import DPRNN, SepFormer

pytest.importorskip("speechbrain")

TEMPLATE = """\
sample_rate: {sample_rate}
num_spks: {num_spks}
N_encoder_out: {channels}
kernel_size: {kernel}

Encoder: !new:speechbrain.lobes.models.dual_path.Encoder
    kernel_size: !ref <kernel_size>
    out_channels: !ref <N_encoder_out>

{blocks}
MaskNet: !new:speechbrain.lobes.models.dual_path.Dual_Path_Model
    num_spks: !ref <num_spks>
    in_channels: !ref <N_encoder_out>
    out_channels: {d_model}
    num_layers: {num_layers}
    K: {K}
    intra_model: !ref <SBtfintra>
    inter_model: !ref <SBtfinter>
    norm: {norm}
    linear_layer_after_inter_intra: {linear}
    skip_around_intra: {skip}

Decoder: !new:speechbrain.lobes.models.dual_path.Decoder
    in_channels: !ref <N_encoder_out>
    out_channels: 1
    kernel_size: !ref <kernel_size>
    stride: {decoder_stride}
    bias: False

modules:
    encoder: !ref <Encoder>
    decoder: !ref <Decoder>
    masknet: !ref <MaskNet>
"""
TRANSFORMER = """\
SBtfintra: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: {intra_layers}
    d_model: {d_model}
    nhead: {nhead}
    d_ffn: {d_ffn}
    dropout: 0
    use_positional_encoding: {pos}
    norm_before: {norm_before}

SBtfinter: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: {inter_layers}
    d_model: {d_model}
    nhead: {nhead}
    d_ffn: {d_ffn}
    dropout: 0
    use_positional_encoding: {pos}
    norm_before: {norm_before}
"""
LSTM = """\
SBtfintra: !new:speechbrain.lobes.models.dual_path.SBRNNBlock
    input_size: {d_model}
    hidden_channels: {hidden}
    num_layers: 1
    bidirectional: True

SBtfinter: !new:speechbrain.lobes.models.dual_path.SBRNNBlock
    input_size: {d_model}
    hidden_channels: {hidden}
    num_layers: 1
    bidirectional: True
"""
BASE = dict(
    sample_rate=8000, num_spks=2, channels=12, kernel=8, d_model=16, num_layers=2, K=10,
    norm="ln", linear=False, skip=True, decoder_stride=4, intra_layers=2, inter_layers=1,
    nhead=4, d_ffn=24, pos=True, norm_before=True, hidden=8, block="transformer", length=1601,
    batch=2,
)
SETTINGS = {
    "published-like": {},
    "3spk-postnorm-odd": dict(num_spks=3, norm_before=False, length=999, K=7),
    "no-pos-no-skip-linear": dict(pos=False, skip=False, linear=True, intra_layers=1, inter_layers=2),
    "wide-kernel-gln": dict(kernel=16, channels=8, d_model=8, nhead=2, norm="gln", length=2003),
    "decoder-stride-cln": dict(decoder_stride=2, norm="cln", num_layers=1, length=777),
    "long-inter-2402-chunks": dict(kernel=4, K=2, num_layers=1, intra_layers=1, inter_layers=1,
                                   d_ffn=8, length=4803, batch=1),
    "dprnn-lstm": dict(block="lstm", linear=True, length=1201),
    "shorter-than-a-chunk": dict(num_spks=3, length=41, K=16),
}


def write_speechbrain_folder(folder: Path, s: dict) -> dict:
    """Write hyperparams.yaml, instantiate it with SpeechBrain, randomise and save the weights."""
    from hyperpyyaml import load_hyperpyyaml

    blocks = (TRANSFORMER if s["block"] == "transformer" else LSTM).format(**s)
    text = TEMPLATE.format(blocks=blocks, **s)
    (folder / "hyperparams.yaml").write_text(text)
    modules = load_hyperpyyaml(text)
    with torch.no_grad():
        for name in ("Encoder", "MaskNet", "Decoder"):
            for param in modules[name].parameters():
                param.add_(torch.randn_like(param) * 0.2)
    torch.save(modules["Encoder"].state_dict(), folder / "encoder.ckpt")
    torch.save(modules["MaskNet"].state_dict(), folder / "masknet.ckpt")
    torch.save(modules["Decoder"].state_dict(), folder / "decoder.ckpt")
    return modules


def speechbrain_separate(modules: dict, mix: torch.Tensor) -> torch.Tensor:
    """SepformerSeparation.separate_batch, on modules instead of a downloaded model: [B, T, S]."""
    encoder, masknet, decoder = modules["Encoder"], modules["MaskNet"], modules["Decoder"]
    num_spks = modules["num_spks"]
    for module in (encoder, masknet, decoder):
        module.eval()
    with torch.no_grad():
        mix_w = encoder(mix)
        masks = masknet(mix_w)
        sep_h = torch.stack([mix_w] * num_spks) * masks
        est = torch.cat([decoder(sep_h[i]).unsqueeze(-1) for i in range(num_spks)], dim=-1)
    if est.dim() == 2:  # SpeechBrain's Decoder squeezes a batch of one
        est = est.unsqueeze(0)
    length = mix.shape[1]
    if est.shape[1] < length:
        return F.pad(est, (0, 0, 0, length - est.shape[1]))
    return est[:, :length]


@pytest.mark.parametrize("name", list(SETTINGS))
def test_loaded_model_matches_speechbrain(tmp_path, name):
    s = {**BASE, **SETTINGS[name]}
    modules = write_speechbrain_folder(tmp_path, s)
    model, meta = load_sepformer_folder(tmp_path)
    assert meta["task"] == "separation" and meta["sample_rate"] == s["sample_rate"]
    assert model.num_sources == s["num_spks"] and not model.training
    mix = torch.randn(s["batch"], s["length"])
    reference = speechbrain_separate(modules, mix)
    with torch.no_grad():
        ours = model(mix).transpose(1, 2)
    assert ours.shape == reference.shape == (s["batch"], s["length"], s["num_spks"])
    peak = reference.abs().max()
    assert peak > 0
    assert (ours - reference).abs().max() <= 1e-4 * peak


@pytest.mark.parametrize("name", ["published-like", "dprnn-lstm", "wide-kernel-gln"])
def test_saved_folder_loads_in_speechbrain_with_same_output(tmp_path, name):
    from audionets.interop.speechbrain import config_from_hyperparams

    s = {**BASE, **SETTINGS[name]}
    (tmp_path / "src").mkdir()
    write_speechbrain_folder(tmp_path / "src", s)
    model, meta = load_sepformer_folder(tmp_path / "src")
    save_sepformer_folder(model, tmp_path / "out")
    # SpeechBrain instantiates our YAML and loads our .ckpt files strictly
    from hyperpyyaml import load_hyperpyyaml

    modules = load_hyperpyyaml((tmp_path / "out" / "hyperparams.yaml").read_text())
    for name_, file in (("Encoder", "encoder"), ("MaskNet", "masknet"), ("Decoder", "decoder")):
        state = torch.load(tmp_path / "out" / f"{file}.ckpt", weights_only=True)
        modules[name_].load_state_dict(state, strict=True)
    mix = torch.randn(1, 1500)
    with torch.no_grad():
        ours = model(mix).transpose(1, 2)
    torch.testing.assert_close(speechbrain_separate(modules, mix), ours, atol=1e-5, rtol=1e-4)
    # and the round trip gives back the same config
    again, meta2 = load_sepformer_folder(tmp_path / "out")
    assert meta2["config"] == meta["config"]
    path = tmp_path / "out" / "hyperparams.yaml"
    assert build_model(config_from_hyperparams(read_hyperparams(path), path)).config == meta["config"]


def test_save_then_load_round_trip_of_our_model(tmp_path):
    model = SepFormer(num_sources=3, encoder_kernel_size=4, encoder_channels=8, d_model=8,
                      chunk_size=6, num_blocks=1, intra_layers=1, inter_layers=1, nhead=2, d_ffn=16,
                      norm_before=False, sample_rate=16000).eval()
    save_sepformer_folder(model, tmp_path)
    loaded, meta = load_sepformer_folder(tmp_path)
    assert meta["sample_rate"] == 16000 and meta["config"]["num_sources"] == 3
    mix = torch.randn(1, 333)
    with torch.no_grad():
        torch.testing.assert_close(loaded(mix), model(mix))


@pytest.mark.parametrize("model", [
    SepFormer(encoder_channels=8, d_model=8, chunk_size=6, num_blocks=2, intra_layers=2,
              inter_layers=1, nhead=2, d_ffn=16, norm="gln", positional_encoding=True),
    DPRNN(encoder_channels=8, d_model=8, chunk_size=6, num_blocks=2, lstm_hidden_size=4),
], ids=["sepformer-gln", "dprnn"])
def test_the_one_rename_table_is_its_own_inverse(model):
    from audionets.interop.speechbrain import _TO_OURS, _TO_SPEECHBRAIN, _rename

    names = [key.removeprefix("masker.") for key in model.state_dict() if key.startswith("masker.")]
    speechbrain = [_rename(name, _TO_SPEECHBRAIN) for name in names]
    assert [_rename(name, _TO_OURS) for name in speechbrain] == names
    assert len(set(speechbrain)) == len(names)
    assert "dual_mdl.1.intra_mdl.mdl.layers.1.self_att.att.in_proj_weight" in speechbrain \
        or "dual_mdl.1.intra_mdl.mdl.rnn.weight_ih_l0" in speechbrain


def test_read_hyperparams_resolves_refs_without_executing(tmp_path):
    path = tmp_path / "hyperparams.yaml"
    marker = tmp_path / "executed"
    path.write_text(
        "kernel_size: 16\n"
        "stride: !ref <kernel_size> // 2\n"
        "channels: !ref <kernel_size> * 4 + 1\n"
        "folder: !ref <out>/x\n"
        "out: results\n"
        f"__boom: !apply:pathlib.Path.touch [{str(marker)!r}]\n"
        "enc: !new:speechbrain.lobes.models.dual_path.Encoder\n"
        "    kernel_size: !ref <kernel_size>\n"
        "nested: !ref <enc[kernel_size]>\n"
        "data: !PLACEHOLDER\n"
    )
    params = read_hyperparams(path)
    assert params["stride"] == 8 and params["channels"] == 65 and params["folder"] == "results/x"
    assert params["enc"].target == "speechbrain.lobes.models.dual_path.Encoder"
    assert params["enc"].kwargs == {"kernel_size": 16} and params["nested"] == 16
    assert not marker.exists()


def _write_and_break(tmp_path: Path, edit) -> Path:
    write_speechbrain_folder(tmp_path, dict(BASE))
    edit(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "edit, pattern",
    [
        (lambda f: (f / "masknet.ckpt").unlink(), r"masknet\.ckpt: file not found"),
        (lambda f: (f / "hyperparams.yaml").unlink(), r"hyperparams\.yaml: file not found"),
        (lambda f: (f / "hyperparams.yaml").write_text((f / "hyperparams.yaml").read_text().replace(
            "lobes.models.dual_path.Dual_Path_Model", "lobes.models.conv_tasnet.MaskNet")),
         r"hyperparams\.yaml: unsupported .*conv_tasnet\.MaskNet"),
        (lambda f: (f / "hyperparams.yaml").write_text((f / "hyperparams.yaml").read_text().replace(
            "d_ffn: 24", "d_ffn: 32")), r"masknet\.ckpt: .* has shape"),
        (lambda f: (f / "hyperparams.yaml").write_text("a: [unclosed\n"), r"not valid YAML"),
        (lambda f: (f / "encoder.ckpt").write_bytes(b"not a checkpoint"), r"encoder\.ckpt: not a loadable"),
        (lambda f: (f / "hyperparams.yaml").write_text((f / "hyperparams.yaml").read_text().replace(
            "num_spks: !ref <num_spks>", "num_spks: !ref <missing>")), r"!ref <missing>"),
        (lambda f: (f / "hyperparams.yaml").write_text((f / "hyperparams.yaml").read_text().replace(
            "    kernel_size: !ref <kernel_size>\n    stride", "    stride")), r"Decoder is missing .*kernel_size"),
    ],
    ids=["missing-ckpt", "missing-yaml", "convtasnet", "wrong-shape", "bad-yaml", "garbage-ckpt", "bad-ref",
         "missing-argument"],
)
def test_errors_are_one_line_checkpoint_errors(tmp_path, edit, pattern):
    folder = _write_and_break(tmp_path, edit)
    with pytest.raises(CheckpointError, match=pattern) as info:
        load_sepformer_folder(folder)
    assert "\n" not in str(info.value)


def test_resepformer_is_rejected_by_class(tmp_path):
    (tmp_path / "hyperparams.yaml").write_text(
        "Encoder: !new:speechbrain.lobes.models.dual_path.Encoder\n    kernel_size: 16\n    out_channels: 128\n"
        "MaskNet: !new:speechbrain.lobes.models.resepformer.ResourceEfficientSeparator\n    input_dim: 128\n"
        "Decoder: !new:speechbrain.lobes.models.dual_path.Decoder\n    in_channels: 128\n    kernel_size: 16\n"
    )
    with pytest.raises(CheckpointError, match="resepformer.ResourceEfficientSeparator"):
        load_sepformer_folder(tmp_path)


def test_speechbrain_folder_initialises_a_run_and_exports(tmp_path):
    # the README's fine-tuning path: init_from=<SpeechBrain model>, and export of one
    from audionets.cli import main
    from audionets.hub import load_model
    from audionets.training.config import config_from_dict
    from audionets.training.trainer import init_weights

    (tmp_path / "sb").mkdir()
    write_speechbrain_folder(tmp_path / "sb", {**BASE, **SETTINGS["published-like"]})
    source, meta = load_model(tmp_path / "sb")
    assert set(meta.config) >= {"task", "sample_rate", "model"}
    config = config_from_dict({
        "task": "separation", "sample_rate": 8000, "experiment_dir": str(tmp_path / "run"),
        "model": dict(meta.config["model"]), "data": {"name": "synth_mix"},
        "init_from": str(tmp_path / "sb"),
    })
    model = build_model(config.model)
    init_weights(model, config)
    mix = torch.randn(1, 1200)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(mix), source(mix), rtol=0, atol=0)

    assert main(["export", str(tmp_path / "sb"), str(tmp_path / "ours")]) == 0
    exported, exported_meta = load_model(tmp_path / "ours")
    assert exported_meta.config["model"] == meta.config["model"]
    with torch.no_grad():
        torch.testing.assert_close(exported(mix), source(mix), rtol=0, atol=0)
