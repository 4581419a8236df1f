"""The tutorials in recipes/tutorials run with --quick, write their plots and show their point."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

TUTORIALS = Path(__file__).resolve().parents[1] / "recipes" / "tutorials"


@pytest.fixture
def tutorial(monkeypatch):
    """Import a tutorial script as a module (its folder on sys.path for ``common``).

    The scripts set torch's thread count (``--threads``, 1); it is restored afterwards.
    """
    monkeypatch.syspath_prepend(str(TUTORIALS))
    threads = torch.get_num_threads()

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"tutorial_{name}", TUTORIALS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    yield load
    torch.set_num_threads(threads)


def _run(module, out_dir: Path, *extra: str):
    return module.main(["--quick", "--out-dir", str(out_dir), *extra])


def _assert_png(path: Path):
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_xor_two_layer_network_solves_xor(tutorial, tmp_path):
    results = _run(tutorial("xor"), tmp_path)
    assert results["corner_accuracy"] == 1.0
    assert results["train_accuracy"] >= 0.98
    _assert_png(tmp_path / "xor_boundary.png")
    _assert_png(tmp_path / "xor_loss.png")


def test_activations_xor_plots_every_activation_and_smooth_ones_solve_it(tutorial, tmp_path):
    results = _run(tutorial("activations_xor"), tmp_path,
                   "--activations", "sigmoid", "tanh", "gelu")
    assert set(results) == {"sigmoid", "tanh", "gelu"}
    assert results["tanh"]["corner_accuracy"] == 1.0
    assert results["tanh"]["final_loss"] < results["sigmoid"]["final_loss"]
    _assert_png(tmp_path / "activations_xor.png")


def test_gradient_norms_vanish_in_plain_but_not_residual_network(tutorial, tmp_path):
    results = _run(tutorial("gradient_norms"), tmp_path)
    plain, residual = results["plain"], results["residual"]
    assert len(plain) == len(residual) == 20
    assert residual[0] > 1e3 * plain[0]
    assert plain[0] < plain[-1] * 1e-3  # the plain network's gradient shrinks towards the input
    _assert_png(tmp_path / "gradient_norms.png")


@pytest.mark.slow
def test_delayed_xor_gru_beats_finite_receptive_field_conv(tutorial, tmp_path):
    results = _run(tutorial("delayed_xor"), tmp_path)
    conv, gru = results["conv"], results["gru"]
    assert conv[2] > 0.95  # tau < R: within the receptive field
    assert conv[6] < 0.65  # tau >= R: at chance
    assert gru[6] > 0.85
    _assert_png(tmp_path / "delayed_xor.png")


def test_hand_wired_xor_truth_table_is_exact_and_the_trained_network_agrees(tutorial, tmp_path):
    results = _run(tutorial("hand_xor"), tmp_path)
    # (x1, x2, h1 = OR, h2 = NAND, y = AND(h1, h2)) as on the lecture's slide
    assert results["hand_wired"] == [(0, 0, 0, 1, 0), (0, 1, 1, 1, 1), (1, 0, 1, 1, 1),
                                     (1, 1, 1, 0, 0)]
    assert [row[4] for row in results["trained"]] == [0, 1, 1, 0]
    _assert_png(tmp_path / "hand_xor.png")


def test_conv1d_is_correlation_and_finds_a_template(tutorial, tmp_path):
    results = _run(tutorial("correlation"), tmp_path)
    assert results["max_diff_correlate"] < 1e-9
    assert results["max_diff_convolve_flipped"] < 1e-9  # correlation = convolution, kernel flipped
    assert results["max_diff_convolve"] > 0.5  # the kernel is asymmetric: no flip, other result
    assert results["peak"] == results["position"]
    assert results["peak_to_second"] > 1.2
    _assert_png(tmp_path / "correlation.png")


def test_transposed_conv_is_zero_insertion_and_flipped_filtering(tutorial, tmp_path):
    module = tutorial("transposed_conv")
    results = _run(module, tmp_path)
    assert results["settings"] > 300 and results["max_diff"] < 1e-6
    assert results["lengths_checked"] > 10000 and results["length_mismatches"] == []
    assert results["adjoint_diff"] < 1e-9
    # the formulas themselves, on values worked out by hand
    assert module.conv_length(10, kernel=3, stride=2, padding=1, dilation=1) == 5
    assert module.transposed_length(5, kernel=4, stride=2, padding=1, dilation=1,
                                    output_padding=0) == 10
    torch.testing.assert_close(module.zero_insert(torch.tensor([1.0, 2.0, 3.0]), 3),
                               torch.tensor([1.0, 0, 0, 2, 0, 0, 3]))
    _assert_png(tmp_path / "transposed_conv.png")


@pytest.mark.slow
def test_more_hidden_units_fit_the_circle_better(tutorial, tmp_path):
    results = _run(tutorial("circles"), tmp_path)
    accuracy = {hidden: r["test_accuracy"] for hidden, r in results.items()}
    assert accuracy[2] < 0.85  # two lines: a band through the circle at best
    assert accuracy[3] > 0.9 and accuracy[10] > 0.95
    assert accuracy[2] < accuracy[3] < accuracy[10]
    _assert_png(tmp_path / "circles.png")


@pytest.mark.slow
def test_deep_sigmoid_network_learns_only_with_residuals(tutorial, tmp_path):
    results = _run(tutorial("deep_residual"), tmp_path)
    for activation in ("sigmoid", "leaky_relu"):
        plain, residual = results[activation]["plain"], results[activation]["residual"]
        assert len(plain["gradient_norms"]) == 6
        # at the same initial weights, the skips carry the gradient to the first layer
        assert residual["gradient_norms"][0] > 1e3 * plain["gradient_norms"][0]
        assert residual["final_loss"] < plain["final_loss"]
        assert residual["test_accuracy"] > 0.9
    sigmoid = results["sigmoid"]
    assert sigmoid["plain"]["test_accuracy"] < 0.75  # one line through the square at best
    assert sigmoid["plain"]["final_loss"] > 10 * sigmoid["residual"]["final_loss"]
    _assert_png(tmp_path / "deep_residual.png")


@pytest.mark.slow
def test_batch_norm_trains_the_audio_classifier_faster(tutorial, tmp_path):
    results = _run(tutorial("batch_norm"), tmp_path)
    assert set(results) == {0.01, 0.1}
    for lr, runs in results.items():
        with_bn, without = runs["with BN"], runs["without BN"]
        assert len(with_bn["valid_accuracy"]) == 8
        assert with_bn["epoch_loss"][-1] < 0.5 * without["epoch_loss"][-1]
        assert with_bn["valid_accuracy"][-1] > 0.65  # 6 classes: chance is 0.17
    assert results[0.01]["with BN"]["valid_accuracy"][-1] > results[0.01]["without BN"][
        "valid_accuracy"][-1]
    _assert_png(tmp_path / "batch_norm.png")


@pytest.mark.slow
def test_optimizers_on_the_quadratic_and_on_audio(tutorial, tmp_path):
    results = _run(tutorial("optimizers"), tmp_path)
    quadratic = results["quadratic"]
    # gradient descent on 3 w1^2 + w2^2: w1 shrinks by (1 - 6 lr) per step, w2 by (1 - 2 lr)
    path = quadratic["sgd lr 0.02"]["path"]
    steps = torch.arange(len(path), dtype=torch.float64)
    torch.testing.assert_close(path[:, 0], -2.5 * (1 - 6 * 0.02) ** steps)
    torch.testing.assert_close(path[:, 1], 2.0 * (1 - 2 * 0.02) ** steps)
    w1 = quadratic["sgd lr 0.3"]["path"][:20, 0]
    assert bool((w1[1:] * w1[:-1] < 0).all())  # the zig-zag: w1 changes sign at every step
    assert quadratic["sgd lr 0.34"]["loss"][-1] > quadratic["sgd lr 0.34"]["loss"][0]
    for label in ("momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"):
        assert quadratic[label]["loss"][-1] < 1e-3, label
    # Adam's first step is lr times the sign of the gradient, in every coordinate
    first = quadratic["adam"]["path"][1] - quadratic["adam"]["path"][0]
    torch.testing.assert_close(first, torch.tensor([0.1, -0.1], dtype=torch.float64))
    audio = results["audio"]
    assert set(audio) == {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"}
    for label, run in audio.items():
        assert run["epoch_loss"][-1] < 0.8 * run["epoch_loss"][0], label
    assert audio["adam"]["valid_accuracy"][-1] > 0.5
    _assert_png(tmp_path / "optimizers.png")


def test_peak_memory_counts_tensors_created_and_freed(tutorial):
    module = tutorial("attention_cost")
    x = torch.ones(1000)
    with module.PeakMemory() as memory:
        y = x * 2  # 4000 bytes
        del y
        z = torch.zeros(500, dtype=torch.float64)  # 4000 bytes, after y was freed
        view = z[:10].t()  # a view: no new storage
        del view
    assert memory.peak == 4000
    del z


@pytest.mark.slow
def test_attention_cost_full_is_quadratic_and_dual_path_is_t_sqrt_t(tutorial, tmp_path):
    results = _run(tutorial("attention_cost"), tmp_path)
    full, dual = results["full"], results["dual-path"]
    # memory is counted, not timed: the two T x T float32 matrices (scores, softmax) dominate
    for length, peak in zip(results["lengths"], full["bytes"]):
        assert 8 * length**2 <= peak < 1.05 * 8 * length**2
    assert 1.9 < full["memory_slope"] < 2.1
    assert 1.1 < dual["memory_slope"] < 1.6  # 1.5 plus O(T d) copies of the input
    # the times are measured and plotted but not asserted: on a shared machine they are noise
    assert len(full["seconds"]) == len(dual["seconds"]) == len(results["lengths"])
    _assert_png(tmp_path / "attention_cost.png")
