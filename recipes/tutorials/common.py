"""Shared pieces of the tutorial scripts: toy data, toy models, a full-batch training loop.

Each tutorial script stays a thin ``main(argv) -> dict`` that builds data and models from here,
trains, writes PNG plots into ``--out-dir`` and returns its key numbers (the tests check them).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from audionets.models.mlp import ResidualMLP
from audionets.models.rnn import build_recurrent


def base_parser(description: str) -> argparse.ArgumentParser:
    """``--out-dir`` (created), ``--quick`` (tiny settings for tests), ``--seed``, ``--threads``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/tutorials"),
                        help="folder for the PNG plots (created if missing)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings that run in a few seconds (used by the tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (these models are too small to gain from more)")
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``, apply ``--threads`` and seed torch's global generator."""
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return args


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend (imported on demand)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` (PNG, folder created) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return path


# --- XOR on points -------------------------------------------------------------------------

XOR_CORNERS = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_LABELS = torch.tensor([0, 1, 1, 0])


def xor_points(
    n: int, noise: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points scattered (Gaussian, std ``noise``) around the four XOR corners.

    Returns ``x[n, 2]`` float and ``y[n]`` int64 with ``y = XOR(corner)``.
    """
    corner = torch.randint(0, 4, (n,), generator=generator)
    x = XOR_CORNERS[corner] + noise * torch.randn(n, 2, generator=generator)
    return x, XOR_LABELS[corner]


def circle_points(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points uniform in the square [-1.5, 1.5]^2, label 1 inside the circle of radius
    ``sqrt(4.5 / pi)`` (half the square's area, so the classes are balanced).

    Returns ``x[n, 2]`` float and ``y[n]`` int64.
    """
    x = 3 * torch.rand(n, 2, generator=generator) - 1.5
    return x, (x.norm(dim=1) < CIRCLE_RADIUS).long()


CIRCLE_RADIUS = (4.5 / torch.pi) ** 0.5


def plot_decision(ax, model: nn.Module, x: torch.Tensor, y: torch.Tensor, title: str,
                  extent: float = 1.6) -> None:
    """P(y = 1) of ``model`` over ``[-extent, extent]^2``, its 0.5 contour and the points."""
    grid = torch.linspace(-extent, extent, 150)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    model.eval()
    with torch.no_grad():
        prob = model(torch.stack((gx.flatten(), gy.flatten()), 1)).softmax(1)[:, 1].view_as(gx)
    model.train()
    ax.contourf(gx, gy, prob, levels=20, cmap="RdBu_r", vmin=0, vmax=1)
    ax.contour(gx, gy, prob, levels=[0.5], colors="k")
    shown = slice(0, 300)  # enough points to see the classes without hiding the regions
    ax.scatter(x[shown, 0], x[shown, 1], c=y[shown], cmap="RdBu_r", edgecolors="k",
               linewidths=0.4, s=8)
    ax.set(xlim=(-extent, extent), ylim=(-extent, extent), aspect="equal", title=title,
           xticks=[], yticks=[])


def train_full_batch(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = nn.functional.cross_entropy,
) -> list[float]:
    """Adam on the whole of ``(x, y)`` for ``steps`` steps; returns the loss of every step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def layer_gradient_norms(model: ResidualMLP, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """``||dL/dW_i||`` for every block ``i`` (input side first) after one backward pass of the
    cross-entropy on ``(x, y)``."""
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    norms = [block.linear.weight.grad.norm().item() for block in model.blocks]
    model.zero_grad()
    return norms


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``argmax(model(x)) == y`` (over every non-ignored position)."""
    model.eval()
    predictions = model(x).argmax(1)
    model.train()
    keep = y != IGNORE
    return (predictions[keep] == y[keep]).float().mean().item()


# --- Delayed XOR on bit sequences ----------------------------------------------------------

IGNORE = -100  # label of the first tau steps, where x_{t - tau} does not exist


def delayed_xor(batch: int, length: int, tau: int, generator: torch.Generator):
    """Random bit sequences and their delayed XOR ``y_t = x_t XOR x_{t - tau}``.

    Returns ``x[B, 1, T]`` float bits and ``y[B, T]`` int64 labels, ``IGNORE`` for ``t < tau``.
    """
    bits = torch.randint(0, 2, (batch, length), generator=generator)
    y = torch.full_like(bits, IGNORE)
    y[:, tau:] = bits[:, tau:] ^ bits[:, :-tau]
    return bits.float().unsqueeze(1), y


class ConvTagger(nn.Module):
    """Causal CNN with a receptive field of ``receptive_field`` steps: ``x[B,1,T] -> [B,2,T]``.

    The output at ``t`` sees ``x_{t-R+1} .. x_t`` only, so it cannot compute
    ``XOR(x_t, x_{t-tau})`` once ``tau >= R``.
    """

    def __init__(self, receptive_field: int, hidden: int = 32) -> None:
        super().__init__()
        self.receptive_field = receptive_field
        self.net = nn.Sequential(
            nn.Conv1d(1, hidden, receptive_field), nn.ReLU(),
            nn.Conv1d(hidden, hidden, 1), nn.ReLU(),
            nn.Conv1d(hidden, 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(nn.functional.pad(x, (self.receptive_field - 1, 0)))


class RecurrentTagger(nn.Module):
    """A unidirectional RNN/MGU/GRU/LSTM and a linear read-out: ``x[B,1,T] -> [B,2,T]``."""

    def __init__(self, cell: str, hidden: int = 32) -> None:
        super().__init__()
        self.rnn = build_recurrent(cell, 1, hidden)
        self.out = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.rnn(x.transpose(1, 2))
        return self.out(states).transpose(1, 2)


def train_tagger(model: nn.Module, tau: int, length: int, steps: int, batch: int, lr: float,
                 generator: torch.Generator) -> float:
    """Train on fresh delayed-XOR batches; return accuracy on a held-out batch of 256."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        x, y = delayed_xor(batch, length, tau, generator)
        loss = nn.functional.cross_entropy(model(x), y, ignore_index=IGNORE)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    x, y = delayed_xor(256, length, tau, generator)
    return accuracy(model, x, y)


# --- A small audio classification task ------------------------------------------------------

AUDIO_RATE = 8000


AUDIO_CLASSES = ("chirp_up", "chirp_down", "am_tone", "click_train", "white_noise", "brown_noise")


def audio_task(per_class_train: int, per_class_valid: int, seconds: float = 0.5,
               seed: int = 0) -> dict[str, torch.Tensor]:
    """Six classes (:data:`AUDIO_CLASSES`) of the package's ``synth_events`` dataset (sound
    events in coloured noise) at 8 kHz, read once into memory.

    Returns ``{"train_wav": [N, T], "train_label": [N], "valid_wav": [M, T], "valid_label": [M]}``
    with ``T = seconds * 8000``, labels 0..5 in the order of :data:`AUDIO_CLASSES`.
    """
    import audionets.data  # noqa: F401 (registers the datasets)
    from audionets.data.events import EVENT_CLASSES
    from audionets.registry import DATASETS

    codes = [EVENT_CLASSES.index(name) for name in AUDIO_CLASSES]
    task = {}
    for split, per_class in (("train", per_class_train), ("valid", per_class_valid)):
        dataset = DATASETS.build("synth_events", split=split, sample_rate=AUDIO_RATE,
                                 segment_seconds=seconds, seed=seed,
                                 num_examples=len(EVENT_CLASSES) * per_class)
        # item i has label i % 13: pick the items of our classes
        index = [(len(EVENT_CLASSES) * k + code, label) for k in range(per_class)
                 for label, code in enumerate(codes)]
        task[f"{split}_wav"] = torch.stack([dataset[i]["wav"] for i, _ in index])
        task[f"{split}_label"] = torch.tensor([label for _, label in index])
    return task


def audio_classifier(batch_norm: bool) -> nn.Module:
    """The package's time-frequency CNN (``tf_cnn``: log-mel front-end, Conv1d blocks over
    frames, mean pooling, linear) at a small size; ``wav[B, T] -> logits[B, 6]``."""
    from audionets.models.classifiers import TimeFrequencyCNN

    return TimeFrequencyCNN(len(AUDIO_CLASSES), AUDIO_RATE,
                            frontend={"name": "logmel", "n_mels": 32},
                            channels=[32, 32, 64], batch_norm=batch_norm, dropout=0.0,
                            input_norm="instance")


def train_audio(model: nn.Module, task: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                epochs: int, batch_size: int, generator: torch.Generator) -> dict[str, list]:
    """Mini-batch training on ``task``; returns the loss of every step (``"loss"``) and the
    validation accuracy after every epoch (``"valid_accuracy"``)."""
    losses, accuracies = [], []
    wav, label = task["train_wav"], task["train_label"]
    for _ in range(epochs):
        for batch in torch.randperm(len(wav), generator=generator).split(batch_size):
            loss = nn.functional.cross_entropy(model(wav[batch]), label[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item() if torch.isfinite(loss) else float("nan"))
        accuracies.append(accuracy(model, task["valid_wav"], task["valid_label"]))
    return {"loss": losses, "valid_accuracy": accuracies}
