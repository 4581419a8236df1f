"""Load a model from wherever it is: shipped name, folder, experiment, checkpoint, hub id.

:func:`load_model` accepts, in this order of checks:

1. a checkpoint file ``*.pt`` written by the trainer (weights + the config they were trained with);
2. a pretrained model folder: ``config.yaml`` + ``model.safetensors`` (see :func:`save_pretrained`);
3. an experiment folder: ``config.yaml`` + ``checkpoints/`` (the best checkpoint, else ``last.pt``);
4. a SpeechBrain SepFormer/DPRNN folder: ``hyperparams.yaml`` + ``*.ckpt``;
5. the name of a model shipped with audionets (a folder under ``audionets/pretrained/``);
6. a Hugging Face hub id ``owner/name`` (downloaded once into the local cache, then 2-4), only
   when no local path of that name exists and ``owner`` is not a local folder (then it is most
   likely a mistyped path); ``hf://owner/name`` always means the hub.

Every failure is a one-line :class:`~audionets.errors.CheckpointError`. Weights are read with
safetensors or ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audionets._version import __version__
from audionets.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from audionets.errors import AudionetsError, CheckpointError, OutputError, first_line
from audionets.serialization.checkpoints import LAST, find_best_checkpoint, load_checkpoint
from audionets.serialization.weights import load_weights
from audionets.serialization.yaml_files import check_version, parse_yaml
from audionets.tasks import TASKS

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"
EXPORT_KEY = "export"  # the config section of an exported (ONNX / TorchScript) folder
HF_PREFIX = "hf://"  # forces a hub id: hf://owner/name
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


@dataclass
class ModelMeta:
    """What a loaded model is for.

    ``task``: a name in :data:`audionets.registry.TASKS`; ``sample_rate`` in Hz; ``labels``:
    class names (classifiers) or None; ``config``: the config dict (at least ``task``,
    ``sample_rate``, ``model``); ``source``: where it was loaded from.
    """

    task: str
    sample_rate: int
    labels: list[str] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    source: str = ""


def shipped_models() -> list[str]:
    """Names of the models shipped in ``audionets/pretrained/``."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / CONFIG).is_file())


def is_exported(folder: Path) -> bool:
    """Whether ``folder`` is an exported model folder (see :mod:`audionets.export`): its
    config has an ``export`` section."""
    config = folder / CONFIG
    if not folder.is_dir() or not config.is_file():
        return False
    try:
        text = config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False  # reported when the config is read
    return any(line.startswith(f"{EXPORT_KEY}:") for line in text.splitlines())


def check_config(config: Any, where: str) -> dict[str, Any]:
    """Check that ``config`` describes a model this audionets can build; return it."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{where}: not a model config (expected a mapping)")
    version = config.get("audionets_version")
    if version is not None:
        check_version(version, where, CheckpointError)
    missing = [k for k in ("task", "sample_rate", "model") if config.get(k) is None]
    if missing:
        raise CheckpointError(f"{where}: config has no {missing[0]!r}; it needs task, sample_rate "
                              "and model")
    if not isinstance(config["model"], dict) or "name" not in config["model"]:
        raise CheckpointError(f"{where}: config 'model' must be a mapping with a 'name'")
    if config["task"] not in TASKS:
        raise CheckpointError(f"{where}: task {config['task']!r} is not one of: "
                              f"{', '.join(TASKS)}; fix config.yaml")
    rate = config["sample_rate"]
    if (isinstance(rate, bool) or not isinstance(rate, int)
            or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE):
        raise CheckpointError(f"{where}: sample_rate {rate!r} is not a whole number of Hz from "
                              f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}; fix it in config.yaml")
    labels = config.get("labels")
    if labels is not None and not (isinstance(labels, list)
                                   and all(isinstance(x, str) for x in labels)):
        raise CheckpointError(f"{where}: labels must be a list of class names; fix config.yaml")
    return config


def read_config(path: Path) -> dict[str, Any]:
    """The checked model config at ``path``; CheckpointError when unreadable or incomplete."""
    from audionets.utils import read_text

    try:
        text = read_text(path, CheckpointError, "re-export or re-download the model folder")
        raw = parse_yaml(text, where=str(path))
        return check_config(raw, str(path))
    except AudionetsError as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(str(err)) from None


def build_from_config(config: dict[str, Any], where: str) -> nn.Module:
    """Build (without weights) the model of ``config["model"]``; CheckpointError if impossible."""
    from audionets.models import build_model  # (importing the package registers the models)

    try:
        return build_model(config["model"])
    except AudionetsError as err:
        raise CheckpointError(f"{where}: cannot build the model: {err}") from None


def meta_from_config(config: dict[str, Any], source: str,
                     labels: list[str] | None = None) -> ModelMeta:
    """The :class:`ModelMeta` of a checked config (``labels`` override the config's)."""
    labels = labels if labels is not None else config.get("labels")
    return ModelMeta(task=str(config["task"]), sample_rate=int(config["sample_rate"]),
                     labels=list(labels) if labels is not None else None, config=config,
                     source=source)


def _load_pretrained_folder(folder: Path) -> tuple[nn.Module, ModelMeta]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config = read_config(folder / CONFIG)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file missing; a model folder needs "
                              f"{CONFIG} and {WEIGHTS}")
    model = build_from_config(config, str(folder / CONFIG))
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as err:
        first = first_line(err, 160)
        raise CheckpointError(f"{weights}: unreadable weights ({first}); if the file is damaged, "
                              "export or download the model folder again") from None
    load_weights(model, state, str(weights))
    return model, meta_from_config(config, str(folder))


def _load_checkpoint_file(path: Path) -> tuple[nn.Module, ModelMeta]:
    state = load_checkpoint(path)
    if "model" not in state or "config" not in state:
        raise CheckpointError(f"{path}: not an audionets training checkpoint (no model/config); "
                              "pass a checkpoint that audionets train wrote, or a model folder")
    config = check_config(state["config"], str(path))
    labels = state.get("labels")
    if labels is not None:
        check_config({**config, "labels": labels}, f"{path} (its labels entry)")
    model = build_from_config(config, str(path))
    load_weights(model, state["model"], str(path))
    return model, meta_from_config(config, str(path), labels)


def _load_experiment(folder: Path) -> tuple[nn.Module, ModelMeta]:
    ckpt_dir = folder / "checkpoints"
    path = find_best_checkpoint(ckpt_dir) or ckpt_dir / LAST
    if not path.is_file():
        raise CheckpointError(f"{ckpt_dir}: no checkpoint (best-*.pt or {LAST}); train first or "
                              "pass a checkpoint file")
    return _load_checkpoint_file(path)  # meta.source names the checkpoint file it chose


def _load_speechbrain(folder: Path) -> tuple[nn.Module, ModelMeta]:
    from audionets.interop.speechbrain import load_sepformer_folder

    model, info = load_sepformer_folder(folder)
    # the same shape of config as our own folders, so init_from and export take it too
    config = {"task": info["task"], "sample_rate": int(info["sample_rate"]),
              "model": info["config"]}
    return model, meta_from_config(config, str(folder))


def _load_local(path: Path) -> tuple[nn.Module, ModelMeta]:
    if path.is_file():
        if path.suffix not in (".pt", ".pth", ".ckpt"):
            raise CheckpointError(
                f"{path}: not a model file; pass a .pt checkpoint or a model folder"
            )
        return _load_checkpoint_file(path)
    if (path / WEIGHTS).is_file():
        return _load_pretrained_folder(path)
    if is_exported(path):
        raise CheckpointError(
            f"{path}: is an exported (ONNX / TorchScript) model; run it with Separator / "
            "Classifier.from_pretrained or audionets separate / classify, and train or export "
            "from the folder it was exported from"
        )
    if (path / CONFIG).is_file() and (path / "checkpoints").is_dir():
        return _load_experiment(path)
    if (path / "hyperparams.yaml").is_file():
        return _load_speechbrain(path)
    if (path / CONFIG).is_file():
        return _load_pretrained_folder(path)  # reports the missing weights file
    raise CheckpointError(f"{path}: not a model folder (expected {CONFIG} + {WEIGHTS}, an "
                          "experiment folder, or a SpeechBrain folder with hyperparams.yaml)")


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(f"{repo_id}: loading hub ids needs huggingface_hub "
                              "(pip install huggingface_hub)") from None
    try:
        return Path(snapshot_download(repo_id=repo_id))
    except Exception as err:  # network, missing repo, auth: all reported the same way
        first = first_line(err)
        raise CheckpointError(f"{repo_id}: no such local file or folder, and could not download "
                              f"it from the Hugging Face hub ({first[:160]}); check the path or "
                              "the name, the network and, for a private model, HF_TOKEN") from None


def resolve_source(source: str | Path) -> Path:
    """The local path ``source`` refers to (downloading a hub id if needed)."""
    from audionets.utils import is_link_loop

    path = Path(source).expanduser()
    if path.exists():
        return path
    if is_link_loop(path):
        raise CheckpointError(f"{path}: symbolic link loop; fix the link or pass the model's "
                              "real path")
    text = str(source)
    if text.startswith(HF_PREFIX) and _HUB_ID.match(text[len(HF_PREFIX):]):
        return _download(text[len(HF_PREFIX):])
    if (PRETRAINED_DIR / text / CONFIG).is_file():
        return PRETRAINED_DIR / text
    if _HUB_ID.match(text):
        owner = Path(text.split("/")[0])
        if owner.is_dir():  # most likely a mistyped local path: do not fetch someone's model
            raise CheckpointError(
                f"{text}: no such file or folder (but {owner}/ is a local folder); check the "
                f"path, or write {HF_PREFIX}{text} for the Hugging Face model"
            )
        return _download(text)
    shipped = shipped_models()
    raise CheckpointError(
        f"{text}: no such file, folder or shipped model; shipped models: "
        f"{', '.join(shipped) if shipped else 'none'} (or pass a folder, checkpoint or hub id "
        "owner/name)"
    )


def load_model(source: str | Path,
               device: str | torch.device = "cpu") -> tuple[nn.Module, ModelMeta]:
    """Load ``source`` (see the module docstring) as ``(model in eval mode on device, meta)``."""
    model, meta = _load_local(resolve_source(source))
    if not meta.source:
        meta.source = str(source)
    return model.to(device).eval(), meta


def save_pretrained(model: nn.Module, meta: ModelMeta, folder: str | Path) -> Path:
    """Write ``config.yaml`` + ``model.safetensors`` to ``folder`` (created), both atomically.

    The config is ``meta.config`` with ``task``, ``sample_rate``, ``labels`` and
    ``audionets_version`` set from ``meta``; it must hold ``model`` (the dict rebuilding it).
    """
    import yaml
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    from audionets.utils import atomic_write, prepare_out_dir

    folder = Path(folder)
    config = dict(meta.config)
    config.update(task=meta.task, sample_rate=int(meta.sample_rate), labels=meta.labels,
                  audionets_version=__version__)
    check_config(config, str(folder))
    prepare_out_dir(folder)
    # clone: tensors sharing storage (tied weights) must be separate entries for safetensors
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    try:
        with atomic_write(folder / WEIGHTS) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt", "audionets_version": __version__})
    except SafetensorError as err:  # safetensors reports a full disk as its own error
        raise OutputError(f"{folder / WEIGHTS}: cannot write ({str(err)[:120]}); free disk space "
                          "or choose another folder") from None
    with atomic_write(folder / CONFIG) as tmp:
        tmp.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return folder
