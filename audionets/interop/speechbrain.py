"""Read and write SpeechBrain SepFormer / DPRNN model folders without running SpeechBrain.

A SpeechBrain separation folder (e.g. a snapshot of ``speechbrain/sepformer-wsj02mix``) holds::

    hyperparams.yaml   HyperPyYAML: Encoder: !new:speechbrain.lobes.models.dual_path.Encoder ...
    encoder.ckpt       state dict of dual_path.Encoder
    masknet.ckpt       state dict of dual_path.Dual_Path_Model (SBTransformerBlock or SBRNNBlock)
    decoder.ckpt       state dict of dual_path.Decoder

:func:`load_sepformer_folder` parses ``hyperparams.yaml`` as plain data (HyperPyYAML tags are
never executed: ``!new:`` becomes a class name and its arguments, ``!ref`` references and their
simple arithmetic are resolved), builds the equivalent :class:`~audionets.models.sepformer.SepFormer`
and renames the weights into it. :func:`save_sepformer_folder` writes the reverse.
"""

from __future__ import annotations

import ast
import operator
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from audionets.errors import CheckpointError, first_line
from audionets.models.sepformer import SepFormer
from audionets.tasks import SeparationTask
from audionets.utils import atomic_write, read_text

DUAL_PATH = "speechbrain.lobes.models.dual_path"
ENCODER = f"{DUAL_PATH}.Encoder"
DECODER = f"{DUAL_PATH}.Decoder"
MASKNET = f"{DUAL_PATH}.Dual_Path_Model"
TRANSFORMER_BLOCK = f"{DUAL_PATH}.SBTransformerBlock"
RNN_BLOCK = f"{DUAL_PATH}.SBRNNBlock"
CKPT_FILES = {"encoder": "encoder.ckpt", "masknet": "masknet.ckpt", "decoder": "decoder.ckpt"}

# Positional-argument order of the SpeechBrain constructors (``!new:`` with a list).
SIGNATURES = {
    ENCODER: ("kernel_size", "out_channels", "in_channels"),
    DECODER: ("in_channels", "out_channels", "kernel_size", "stride"),
    MASKNET: ("in_channels", "out_channels", "intra_model", "inter_model", "num_layers", "norm",
              "K", "num_spks", "skip_around_intra", "linear_layer_after_inter_intra",
              "use_global_pos_enc", "max_length"),
    TRANSFORMER_BLOCK: ("num_layers", "d_model", "nhead", "d_ffn", "input_shape", "kdim", "vdim",
                        "dropout", "activation", "use_positional_encoding", "norm_before",
                        "attention_type"),
    RNN_BLOCK: ("input_size", "hidden_channels", "num_layers", "rnn_type", "dropout",
                "bidirectional"),
}
# Arguments without a default in SpeechBrain's constructors.
REQUIRED = {
    ENCODER: (),
    DECODER: ("in_channels", "kernel_size"),
    MASKNET: ("in_channels", "out_channels", "intra_model", "inter_model"),
    TRANSFORMER_BLOCK: ("num_layers", "d_model", "nhead"),
    RNN_BLOCK: ("input_size", "hidden_channels", "num_layers"),
}
# Constructor defaults of SpeechBrain 1.x for the arguments we read.
DEFAULTS = {
    ENCODER: {"kernel_size": 2, "out_channels": 64, "in_channels": 1},
    DECODER: {"out_channels": 1, "stride": 1, "bias": True, "padding": 0, "groups": 1,
              "dilation": 1, "output_padding": 0},
    MASKNET: {"num_layers": 1, "norm": "ln", "K": 200, "num_spks": 2, "skip_around_intra": True,
              "linear_layer_after_inter_intra": True, "use_global_pos_enc": False},
    TRANSFORMER_BLOCK: {"d_ffn": 2048, "kdim": None, "vdim": None, "dropout": 0.1,
                        "activation": "relu", "use_positional_encoding": False,
                        "norm_before": False, "attention_type": "regularMHA"},
    RNN_BLOCK: {"rnn_type": "LSTM", "dropout": 0, "bidirectional": True},
}


# --------------------------------------------------------------------------- YAML as data


@dataclass
class Tagged:
    """A HyperPyYAML tagged node kept as data: ``!new:a.B {x: 1}`` -> ``Tagged("new:a.B", {...})``."""

    tag: str
    value: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.tag.split(":", 1)[0]

    @property
    def target(self) -> str:
        return self.tag.split(":", 1)[1] if ":" in self.tag else ""


@dataclass
class Ref:
    """An unresolved ``!ref`` expression such as ``<N>`` or ``<kernel_size> // 2``."""

    expression: str


def _yaml_loader() -> type:
    import yaml

    class DataLoader(yaml.SafeLoader):
        """SafeLoader that turns every ``!tag`` into data instead of executing it."""

    def construct_tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if suffix == "ref":
            return Ref(str(value))
        if isinstance(value, dict):
            return Tagged(suffix, None, dict(value))
        return Tagged(suffix, value)

    DataLoader.add_multi_constructor("!", construct_tagged)
    return DataLoader


_REF = re.compile(r"<([^<>]+)>")
_OPERATORS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos,
}


def _arithmetic(text: str) -> Any:
    """Evaluate ``text`` if it is numbers and + - * / // % ** only; otherwise return it unchanged."""

    def evaluate(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](evaluate(node.left), evaluate(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](evaluate(node.operand))
        raise ValueError("not arithmetic")

    try:
        return evaluate(ast.parse(text.strip(), mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, TypeError, OverflowError):
        return text


class _Resolver:
    """Resolves ``!ref`` nodes against the top-level mapping (``<a>``, ``<a.b>``, ``<a[b]>``)."""

    def __init__(self, root: dict[str, Any], path: Path) -> None:
        self.root = root
        self.path = path
        self.active: set[str] = set()

    def lookup(self, name: str) -> Any:
        parts = [p for p in re.split(r"[.\[\]]", name) if p]
        if not parts or parts[0] not in self.root:
            raise CheckpointError(f"{self.path}: !ref <{name}> names no key of the file; fix the file")
        if name in self.active:
            raise CheckpointError(f"{self.path}: !ref <{name}> refers to itself; fix the file")
        self.active.add(name)
        try:
            value = self.resolve(self.root[parts[0]])
            for part in parts[1:]:
                if isinstance(value, Tagged):
                    value = value.kwargs
                value = value[int(part) if isinstance(value, list) else part]
        except (KeyError, IndexError, TypeError, ValueError):
            raise CheckpointError(f"{self.path}: cannot resolve !ref <{name}>; fix the file") from None
        finally:
            self.active.discard(name)
        return value

    def resolve(self, value: Any) -> Any:
        if isinstance(value, Ref):
            expression = value.expression.strip()
            whole = _REF.fullmatch(expression)
            if whole:
                return self.lookup(whole.group(1))
            substituted = _REF.sub(lambda m: str(self.lookup(m.group(1))), expression)
            return _arithmetic(substituted)
        if isinstance(value, Tagged):
            return Tagged(value.tag, self.resolve(value.value), self.resolve(value.kwargs))
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value


def read_hyperparams(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a HyperPyYAML file as data with every ``!ref`` resolved (nothing is executed)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found; a SpeechBrain model folder needs hyperparams.yaml")
    text = read_text(path, CheckpointError, "fix or re-download the model folder")
    try:
        raw = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as err:
        raise CheckpointError(f"{path}: not valid YAML ({first_line(err)}); fix or re-download the file") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a mapping of hyperparameters at the top level")
    return _Resolver(raw, path).resolve(raw)


# --------------------------------------------------------------------------- hyperparams -> config


def _arguments(node: Tagged, cls: str, path: Path) -> dict[str, Any]:
    """The keyword arguments of a ``!new:`` node (positional lists named), with SB defaults."""
    args = dict(DEFAULTS[cls])
    if isinstance(node.value, list):
        args.update(zip(SIGNATURES[cls], node.value))
    args.update(node.kwargs)
    missing = [key for key in REQUIRED[cls] if key not in args]
    if missing:
        raise CheckpointError(f"{path}: {cls.rsplit('.', 1)[-1]} is missing its argument {missing[0]!r}; fix the file")
    return args


def _module_node(params: dict[str, Any], role: str, path: Path) -> Tagged:
    """Find the ``!new:`` node of ``role`` (encoder, masknet, decoder) in ``modules`` or at top level."""
    modules = params.get("modules")
    candidates = [modules.get(role)] if isinstance(modules, dict) else []
    names = {"encoder": ("Encoder", "encoder"), "masknet": ("MaskNet", "masknet"),
             "decoder": ("Decoder", "decoder")}[role]
    candidates += [params.get(name) for name in names]
    for node in candidates:
        if isinstance(node, Tagged) and node.kind == "new":
            return node
    raise CheckpointError(f"{path}: no {role} module (modules.{role}: !new:...) found; not a SpeechBrain separation folder")


def _require(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise CheckpointError(f"{path}: unsupported SpeechBrain model: {what}")


def config_from_hyperparams(params: dict[str, Any], path: Path) -> dict[str, Any]:
    """Translate resolved SpeechBrain hyperparameters into our model config ``{"name": ..., ...}``."""
    nodes = {role: _module_node(params, role, path) for role in CKPT_FILES}
    for role, expected in (("encoder", ENCODER), ("masknet", MASKNET), ("decoder", DECODER)):
        _require(nodes[role].target == expected, path,
                 f"{role} class {nodes[role].target} (supported: {expected})")
    enc = _arguments(nodes["encoder"], ENCODER, path)
    mask = _arguments(nodes["masknet"], MASKNET, path)
    dec = _arguments(nodes["decoder"], DECODER, path)
    _require(enc["in_channels"] == 1, path, f"Encoder in_channels={enc['in_channels']} (only 1)")
    _require(not mask["use_global_pos_enc"], path, "Dual_Path_Model use_global_pos_enc=True")
    _require(mask["norm"] in ("ln", "gln", "cln"), path, f"Dual_Path_Model norm={mask['norm']!r}")
    _require(mask["in_channels"] == enc["out_channels"], path,
             "Dual_Path_Model in_channels differs from Encoder out_channels")
    _require(dec.get("in_channels") == enc["out_channels"] and dec["out_channels"] == 1, path,
             "Decoder channels must be Encoder out_channels -> 1")
    _require(not dec["bias"], path, "Decoder bias=True")
    _require((dec["padding"], dec["output_padding"], dec["groups"], dec["dilation"]) == (0, 0, 1, 1),
             path, "Decoder padding/groups/dilation")

    blocks = {}
    for side in ("intra_model", "inter_model"):
        node = mask.get(side)
        _require(isinstance(node, Tagged) and node.kind == "new", path, f"Dual_Path_Model {side} is not a !new: block")
        _require(node.target in (TRANSFORMER_BLOCK, RNN_BLOCK), path,
                 f"{side} class {node.target} (supported: SBTransformerBlock, SBRNNBlock)")
        blocks[side] = (node.target, _arguments(node, node.target, path))
    (intra_cls, intra), (inter_cls, inter) = blocks["intra_model"], blocks["inter_model"]
    _require(intra_cls == inter_cls, path, "intra_model and inter_model of different classes")
    d_model = mask["out_channels"]
    config: dict[str, Any] = {
        "name": "sepformer" if intra_cls == TRANSFORMER_BLOCK else "dprnn",
        "num_sources": int(mask["num_spks"]),
        "sample_rate": int(params.get("sample_rate", 8000)),
        "encoder_kernel_size": int(enc["kernel_size"]),
        "encoder_stride": int(enc["kernel_size"]) // 2,
        "encoder_channels": int(enc["out_channels"]),
        "decoder_kernel_size": int(dec["kernel_size"]),
        "decoder_stride": int(dec["stride"]),
        "d_model": int(d_model),
        "chunk_size": int(mask["K"]),
        "num_blocks": int(mask["num_layers"]),
        "norm": mask["norm"],
        "skip_around_intra": bool(mask["skip_around_intra"]),
        "linear_after_intra_inter": bool(mask["linear_layer_after_inter_intra"]),
    }
    shared = ("d_model", "nhead", "d_ffn", "dropout", "activation", "use_positional_encoding",
              "norm_before", "attention_type")
    if intra_cls == TRANSFORMER_BLOCK:
        for key in shared:
            _require(intra[key] == inter[key], path, f"intra and inter SBTransformerBlock differ in {key}")
        _require(intra["d_model"] == d_model, path, "SBTransformerBlock d_model differs from Dual_Path_Model out_channels")
        _require(intra["attention_type"] == "regularMHA", path, f"attention_type={intra['attention_type']!r}")
        _require(intra["kdim"] in (None, d_model) and intra["vdim"] in (None, d_model), path, "kdim/vdim")
        _require(intra["activation"] in ("relu", "gelu"), path, f"activation={intra['activation']!r}")
        config.update(
            block_type="transformer", intra_layers=int(intra["num_layers"]),
            inter_layers=int(inter["num_layers"]), nhead=int(intra["nhead"]),
            d_ffn=int(intra["d_ffn"]), dropout=float(intra["dropout"]),
            activation=intra["activation"], norm_before=bool(intra["norm_before"]),
            positional_encoding=bool(intra["use_positional_encoding"]),
        )
    else:
        for key in ("input_size", "hidden_channels", "num_layers", "rnn_type", "bidirectional", "dropout"):
            _require(intra[key] == inter[key], path, f"intra and inter SBRNNBlock differ in {key}")
        _require(intra["rnn_type"] == "LSTM" and intra["bidirectional"], path,
                 f"SBRNNBlock rnn_type={intra['rnn_type']!r} bidirectional={intra['bidirectional']}")
        _require(intra["input_size"] == d_model, path, "SBRNNBlock input_size differs from Dual_Path_Model out_channels")
        config.update(
            block_type="lstm", lstm_hidden_size=int(intra["hidden_channels"]), lstm_layers=int(intra["num_layers"]),
            dropout=float(intra["dropout"]),
        )
    return config


# --------------------------------------------------------------------------- weight names

# One renaming table, read left to right to load SpeechBrain weights and right to left to write
# them: (SpeechBrain Dual_Path_Model name part, our DualPathMasker name part). Loading applies the
# rows top down, writing undoes them bottom up. "^" anchors a part at the start of the name;
# {side} stands for intra or inter, {n} for 1 or 2.
_MASKNET_NAMES = [
    (".self_att.att.in_proj_", ".attn.qkv."),
    (".self_att.att.out_proj.", ".attn.out."),
    (".pos_ffn.ffn.0.", ".ffn.linear1."),
    (".pos_ffn.ffn.3.", ".ffn.linear2."),
    (".norm{n}.norm.", ".norm{n}."),
    ("{side}_mdl.mdl.norm.norm.", "{side}.norm."),
    ("{side}_mdl.mdl.layers.", "{side}.layers."),
    ("{side}_mdl.mdl.rnn.", "{side}.lstm."),
    ("{side}_linear.w.", "{side}_linear."),
    ("^dual_mdl.", "^blocks."),
    ("^conv1d.", "^in_proj."),
    ("^conv2d.", "^out_proj."),
    ("^end_conv1x1.", "^end_proj."),
    ("^output.0.", "^output."),
    ("^output_gate.0.", "^output_gate."),
]
_PLACEHOLDERS = {"side": "intra|inter", "n": "[12]"}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _name_rule(source: str, target: str) -> tuple[re.Pattern[str], str]:
    """``(regex, replacement)`` that rewrites the name part ``source`` into ``target``."""
    anchor = "^" if source.startswith("^") else ""
    pieces = _PLACEHOLDER.split(source.removeprefix("^"))  # literal, name, literal, name, ...
    pattern = "".join(re.escape(piece) if i % 2 == 0 else f"(?P<{piece}>{_PLACEHOLDERS[piece]})"
                      for i, piece in enumerate(pieces))
    pieces = _PLACEHOLDER.split(target.removeprefix("^"))
    replacement = "".join(piece.replace("\\", "\\\\") if i % 2 == 0 else f"\\g<{piece}>"
                          for i, piece in enumerate(pieces))
    return re.compile(anchor + pattern), replacement


_TO_OURS = [_name_rule(sb, ours) for sb, ours in _MASKNET_NAMES]
_TO_SPEECHBRAIN = [_name_rule(ours, sb) for sb, ours in reversed(_MASKNET_NAMES)]


def _rename(name: str, rules: list[tuple[re.Pattern[str], str]]) -> str:
    for pattern, replacement in rules:
        name = pattern.sub(replacement, name)
    return name


def _load_ckpt(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found; the SpeechBrain folder needs {', '.join(CKPT_FILES.values())}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors have many types
        raise CheckpointError(f"{path}: not a loadable weights-only checkpoint ({first_line(err, 160)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return {re.sub(r"^module\.", "", key): value for key, value in state.items()}


def _map_weights(folder: Path, model: SepFormer) -> dict[str, torch.Tensor]:
    """Read the three .ckpt files and return our state dict; CheckpointError on any mismatch."""
    ours = model.state_dict()
    mapped: dict[str, tuple[torch.Tensor, Path, str]] = {}
    for role, filename in CKPT_FILES.items():
        path = folder / filename
        for key, tensor in _load_ckpt(path).items():
            if role == "encoder":
                target = "encoder.conv.weight" if key == "conv1d.weight" else f"encoder.?{key}"
            elif role == "decoder":
                target = "decoder.deconv.weight" if key == "weight" else f"decoder.?{key}"
            else:
                if key.endswith("pos_enc.pe"):  # SpeechBrain's precomputed table; ours is computed
                    continue
                target = "masker." + _rename(key, _TO_OURS)
            if target not in ours:
                raise CheckpointError(f"{path}: unexpected weight {key!r} for the architecture in hyperparams.yaml")
            mapped[target] = (tensor, path, key)
    missing = [key for key in ours if key not in mapped]
    if missing:
        raise CheckpointError(f"{folder}: weight for {missing[0]!r} missing from the .ckpt files ({len(missing)} missing)")
    state = {}
    for target, (tensor, path, key) in mapped.items():
        expected = ours[target].shape
        if tensor.numel() != ours[target].numel() or tensor.squeeze().shape != ours[target].squeeze().shape:
            raise CheckpointError(
                f"{path}: {key!r} has shape {tuple(tensor.shape)}, hyperparams.yaml implies {tuple(expected)}"
            )
        state[target] = tensor.reshape(expected).float()
    return state


def load_sepformer_folder(folder: str | os.PathLike) -> tuple[SepFormer, dict[str, Any]]:
    """Build our model from a SpeechBrain SepFormer/DPRNN folder.

    Returns ``(model, meta)`` with the model in eval mode and
    ``meta = {"task": SeparationTask.name, "sample_rate": int, "labels": None, "config": {...}}``
    where ``config`` (every constructor argument) rebuilds the model with
    ``audionets.models.build_model``.
    Raises :class:`CheckpointError` for a missing file, an unsupported class or setting, or
    weights that do not fit.
    """
    from audionets.models import build_model

    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a folder; pass a SpeechBrain model folder")
    path = folder / "hyperparams.yaml"
    config = config_from_hyperparams(read_hyperparams(path), path)
    try:
        model = build_model(config)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot build the model ({first_line(err)})") from None
    model.load_state_dict(_map_weights(folder, model))
    model.eval()
    meta = {"task": SeparationTask.name, "sample_rate": config["sample_rate"], "labels": None,
            "config": dict(model.config)}
    return model, meta


# --------------------------------------------------------------------------- ours -> SpeechBrain


def _speechbrain_state(model: SepFormer) -> dict[str, dict[str, torch.Tensor]]:
    """Our state dict split and renamed into SpeechBrain's encoder / masknet / decoder dicts."""
    from audionets.nn.positional import sinusoidal_encoding

    config = model.config
    channels, d_model = config["encoder_channels"], config["d_model"]
    glob = config["norm"] == "gln"
    out: dict[str, dict[str, torch.Tensor]] = {"encoder": {}, "masknet": {}, "decoder": {}}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().clone()
        if key == "encoder.conv.weight":
            out["encoder"]["conv1d.weight"] = tensor
        elif key == "decoder.deconv.weight":
            out["decoder"]["weight"] = tensor
        else:
            name = _rename(key.removeprefix("masker."), _TO_SPEECHBRAIN)
            if name.startswith(("conv1d.", "end_conv1x1.", "output.0.", "output_gate.0.")) and tensor.dim() == 2:
                tensor = tensor.unsqueeze(-1)
            elif name == "conv2d.weight":
                tensor = tensor[:, :, None, None]
            elif glob and name.startswith("norm."):
                tensor = tensor.view(channels, 1)
            elif glob and re.search(r"_norm\.(weight|bias)$", name):
                tensor = tensor.view(d_model, 1, 1)
            out["masknet"][name] = tensor
    if config["block_type"] == "transformer" and config["positional_encoding"]:
        table = sinusoidal_encoding(2500, d_model).unsqueeze(0)
        for index in range(config["num_blocks"]):
            for side in ("intra", "inter"):
                out["masknet"][f"dual_mdl.{index}.{side}_mdl.pos_enc.pe"] = table.clone()
    return out


def _yaml_dumper() -> type:
    import yaml

    class HyperPyYAMLDumper(yaml.SafeDumper):
        """SafeDumper that writes :class:`Tagged` as ``!new:...`` mappings and :class:`Ref` as
        ``!ref <...>``: the inverse of :func:`_yaml_loader`."""

        def ignore_aliases(self, data: Any) -> bool:
            return True  # HyperPyYAML shares objects with !ref, not with YAML anchors

    def represent_tagged(dumper: yaml.SafeDumper, node: Tagged) -> yaml.Node:
        return dumper.represent_mapping(f"!{node.tag}", node.kwargs)

    def represent_ref(dumper: yaml.SafeDumper, node: Ref) -> yaml.Node:
        return dumper.represent_scalar("!ref", node.expression)

    HyperPyYAMLDumper.add_representer(Tagged, represent_tagged)
    HyperPyYAMLDumper.add_representer(Ref, represent_ref)
    return HyperPyYAMLDumper


def _hyperparams(config: dict[str, Any]) -> dict[str, Any]:
    """SpeechBrain inference hyperparameters for ``config``, as data (:class:`Tagged`, :class:`Ref`)."""
    if config["block_type"] == "transformer":
        def block(layers: int) -> Tagged:
            return Tagged(f"new:{TRANSFORMER_BLOCK}", kwargs={
                "num_layers": layers, "d_model": config["d_model"], "nhead": config["nhead"],
                "d_ffn": config["d_ffn"], "dropout": config["dropout"],
                "activation": config["activation"],
                "use_positional_encoding": bool(config["positional_encoding"]),
                "norm_before": bool(config["norm_before"]),
            })
        intra, inter = block(config["intra_layers"]), block(config["inter_layers"])
    else:
        def block(layers: int) -> Tagged:
            return Tagged(f"new:{RNN_BLOCK}", kwargs={
                "input_size": config["d_model"], "hidden_channels": config["lstm_hidden_size"],
                "num_layers": layers, "dropout": config["dropout"], "rnn_type": "LSTM",
                "bidirectional": True,
            })
        intra, inter = block(config["lstm_layers"]), block(config["lstm_layers"])
    modules = {"encoder": Ref("<Encoder>"), "masknet": Ref("<MaskNet>"), "decoder": Ref("<Decoder>")}
    return {
        "sample_rate": config["sample_rate"],
        "num_spks": config["num_sources"],
        "Encoder": Tagged(f"new:{ENCODER}", kwargs={
            "kernel_size": config["encoder_kernel_size"],
            "out_channels": config["encoder_channels"]}),
        "intra_model": intra,
        "inter_model": inter,
        "MaskNet": Tagged(f"new:{MASKNET}", kwargs={
            "num_spks": Ref("<num_spks>"), "in_channels": config["encoder_channels"],
            "out_channels": config["d_model"], "num_layers": config["num_blocks"],
            "K": config["chunk_size"], "intra_model": Ref("<intra_model>"),
            "inter_model": Ref("<inter_model>"), "norm": config["norm"],
            "linear_layer_after_inter_intra": bool(config["linear_after_intra_inter"]),
            "skip_around_intra": bool(config["skip_around_intra"])}),
        "Decoder": Tagged(f"new:{DECODER}", kwargs={
            "in_channels": config["encoder_channels"], "out_channels": 1,
            "kernel_size": config["decoder_kernel_size"] or config["encoder_kernel_size"],
            "stride": config["_decoder_stride"], "bias": False}),
        "modules": modules,
        "pretrainer": Tagged("new:speechbrain.utils.parameter_transfer.Pretrainer",
                             kwargs={"loadables": dict(modules)}),
    }


def _hyperparams_yaml(config: dict[str, Any]) -> str:
    """A SpeechBrain inference hyperparams.yaml (HyperPyYAML syntax) for ``config``."""
    import yaml

    body = yaml.dump(_hyperparams(config), Dumper=_yaml_dumper(), sort_keys=False,
                     default_flow_style=False)
    return "# SpeechBrain separation model written by audionets (interop.speechbrain)\n" + body


def save_sepformer_folder(model: SepFormer, folder: str | os.PathLike) -> Path:
    """Write ``model`` as a SpeechBrain folder (hyperparams.yaml + encoder/masknet/decoder.ckpt).

    SpeechBrain's ``SepformerSeparation.from_hparams(source=folder)`` loads the result. The
    model must be expressible in SpeechBrain: encoder stride = kernel // 2 (SpeechBrain's
    Encoder has no stride argument) and not quantized. Returns the folder.
    """
    config = dict(getattr(model, "config", {}))
    if not isinstance(model, SepFormer) or not config:
        raise CheckpointError("save_sepformer_folder needs an audionets SepFormer/DPRNN model")
    if any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules()):
        raise CheckpointError("a quantized model cannot be written as a SpeechBrain folder; save the float model")
    kernel = config["encoder_kernel_size"]
    if model.encoder.stride != kernel // 2:
        raise CheckpointError(
            f"model.encoder_stride={model.encoder.stride} cannot be written for SpeechBrain, whose Encoder uses kernel // 2 = {kernel // 2}"
        )
    config["_decoder_stride"] = model.decoder.deconv.stride[0]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for role, state in _speechbrain_state(model).items():
        with atomic_write(folder / CKPT_FILES[role]) as tmp:
            torch.save(state, tmp)
    with atomic_write(folder / "hyperparams.yaml") as tmp:
        tmp.write_text(_hyperparams_yaml(config), encoding="utf-8")
    return folder
