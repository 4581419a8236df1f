"""The real-dataset layouts on tiny fake copies: splits, labels, shapes, resampling, errors."""

from __future__ import annotations

import csv
import math
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

import audionets.data.esc50  # noqa: F401  (registers the datasets)
import audionets.data.librimix  # noqa: F401
import audionets.data.speech_commands  # noqa: F401
import audionets.data.tts_mix as tts_mix
import audionets.data.urbansound8k  # noqa: F401
import audionets.data.wham  # noqa: F401
import audionets.data.wsj0mix as wsj0mix
from audionets.cli import main
from audionets.data.layouts import fold_splits
from audionets.data.manifest import write_csv
from audionets.data.transforms import set_peak_db, time_shift
from audionets.errors import ConfigError
from audionets.registry import DATASETS
from tests import fake_layouts as fake


def dominant_hz(wav: torch.Tensor, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wav.numpy()))
    return float(np.argmax(spectrum) * rate / wav.shape[-1])


@pytest.fixture(scope="module")
def esc50_root(tmp_path_factory):
    return fake.make_esc50(tmp_path_factory.mktemp("esc50"), num_classes=4)


@pytest.fixture(scope="module")
def us8k_root(tmp_path_factory):
    return fake.make_urbansound8k(tmp_path_factory.mktemp("us8k"), num_classes=3)


@pytest.fixture(scope="module")
def manifest_root(esc50_root, tmp_path_factory):
    """A manifest_classification folder listing the ESC-50 fixture's clips in every split."""
    root = tmp_path_factory.mktemp("manifest")
    files = sorted((esc50_root / "audio").glob("*.wav"))
    rows = [[path.stem, str(path), i % 4] for i, path in enumerate(files)]
    for split in ("train", "valid", "test"):
        write_csv(root / f"{split}.csv", ["id", "path", "label"], rows)
    (root / "labels.txt").write_text("a\nb\nc\nd\n")
    return root


@pytest.fixture(scope="module")
def sc_root(tmp_path_factory):
    words = ["yes", "no", "up", "cat", "dog", "marvin", "wow"]
    return fake.make_speech_commands(tmp_path_factory.mktemp("sc"), words=words,
                                     clips_per_word=4)


# ----------------------------------------------------------------------------- folds


def test_fold_splits_rotate_with_test_fold():
    assert fold_splits(5, 5) == {"train": [1, 2, 3], "valid": [4], "test": [5]}
    assert fold_splits(1, 5) == {"train": [2, 3, 4], "valid": [5], "test": [1]}
    assert fold_splits(10, 10)["valid"] == [9]
    with pytest.raises(ConfigError, match="data.test_fold"):
        fold_splits(6, 5)


# ----------------------------------------------------------------------------- ESC-50


def _folds(dataset) -> set[int]:
    return {int(clip.id.split("-")[0]) for clip in dataset.clips}


def test_esc50_default_and_rotated_folds(esc50_root):
    def build(split, **kw):
        return DATASETS.build("esc50", split=split, root=str(esc50_root), **kw)

    assert [_folds(build(s)) for s in ("train", "valid", "test")] == [{1, 2, 3}, {4}, {5}]
    assert [_folds(build(s, test_fold=2)) for s in ("train", "valid", "test")] == [
        {3, 4, 5}, {1}, {2}]
    assert len(build("train")) == 3 * 4 and len(build("test")) == 4


def test_esc50_labels_follow_target_and_items_are_resampled(esc50_root):
    ds = DATASETS.build("esc50", split="test", root=str(esc50_root), sample_rate=16000,
                        segment_seconds=None)
    assert ds.labels == ["cat_00", "cat_01", "cat_02", "cat_03"]
    for i in range(len(ds)):
        item = ds[i]
        target = int(item["id"].split("-")[-1])
        assert item["label"].dtype == torch.int64 and int(item["label"]) == target
        assert item["wav"].dtype == torch.float32 and item["wav"].shape == (8000,)  # 0.5 s
        assert dominant_hz(item["wav"], 16000) == pytest.approx(200 + 20 * target, abs=2.5)


def test_esc10_subset_relabels_in_target_order(esc50_root):
    ds = DATASETS.build("esc50", split="train", root=str(esc50_root), subset="esc10")
    assert ds.labels == ["cat_01", "cat_03"]
    assert len(ds) == 3 * 2 and ds.class_counts() == [3, 3]
    for clip in ds.clips:  # file names end in -<target>
        assert ds.labels[clip.label] == f"cat_{int(clip.id.split('-')[-1]):02d}"
    with pytest.raises(ConfigError, match="data.subset"):
        DATASETS.build("esc50", split="train", root=str(esc50_root), subset="esc20")


def test_esc50_segments_pad_and_crop(esc50_root):
    valid = DATASETS.build("esc50", split="valid", root=str(esc50_root), sample_rate=8000,
                           segment_seconds=1.0)
    item = valid[0]
    assert item["wav"].shape == (8000,)
    assert torch.all(item["wav"][4000:] == 0) and item["wav"][:4000].abs().max() > 0.1
    short = DATASETS.build("esc50", split="valid", root=str(esc50_root), sample_rate=8000,
                           segment_seconds=0.25)
    full = DATASETS.build("esc50", split="valid", root=str(esc50_root), sample_rate=8000,
                          segment_seconds=None)
    assert torch.equal(short[0]["wav"], full[0]["wav"][:2000])  # deterministic crop
    train = DATASETS.build("esc50", split="train", root=str(esc50_root), sample_rate=8000,
                           segment_seconds=0.25)
    crops = {tuple(train[0]["wav"][:5].tolist()) for _ in range(6)}
    assert len(crops) > 1  # random crops in train


def test_esc50_missing_root_and_files(tmp_path, esc50_root):
    with pytest.raises(ConfigError, match=r"^data\.root: .* does not exist; download ESC-50"):
        DATASETS.build("esc50", split="train", root=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match=r"data\.root: .* has no meta/esc50\.csv"):
        DATASETS.build("esc50", split="train", root=str(tmp_path))
    copy = tmp_path / "copy"
    shutil.copytree(esc50_root / "meta", copy / "meta")
    with pytest.raises(ConfigError, match=r"has no audio"):
        DATASETS.build("esc50", split="train", root=str(copy))
    shutil.copytree(esc50_root / "audio", copy / "audio")
    clips = DATASETS.build("esc50", split="test", root=str(copy)).clips
    for clip in clips[:2]:
        clip.path.unlink()
    with pytest.raises(ConfigError, match=rf"2 of the {len(clips)} audio files the test split "
                                          rf"names are missing \(first: {clips[0].path}\)"):
        DATASETS.build("esc50", split="test", root=str(copy))


# ----------------------------------------------------------------------------- UrbanSound8K


def test_urbansound8k_folds_labels_and_mono_resampling(us8k_root):
    def build(split, **kw):
        return DATASETS.build("urbansound8k", split=split, root=str(us8k_root), **kw)

    def folds(ds):
        return {int(c.path.parent.name[4:]) for c in ds.clips}

    assert folds(build("test")) == {10} and folds(build("valid")) == {9}
    assert folds(build("train")) == set(range(1, 9))
    assert folds(build("valid", test_fold=1)) == {10}
    ds = build("train", sample_rate=8000, segment_seconds=None)
    assert ds.labels == ["class_0", "class_1", "class_2"]
    assert ds.class_counts() == [8, 8, 8]
    for i in range(len(ds)):
        clip, item = ds.clips[i], ds[i]
        assert item["wav"].shape == (4000,)  # stereo and 22.05/44.1 kHz -> mono 8 kHz
        stereo = sf.info(str(clip.path)).channels == 2
        assert stereo == (int(clip.path.parent.name[4:]) % 2 == 1)
        assert dominant_hz(item["wav"], 8000) == pytest.approx(300 + 30 * int(item["label"]),
                                                               abs=2.5)
    with pytest.raises(ConfigError, match="metadata/UrbanSound8K.csv"):
        DATASETS.build("urbansound8k", split="train", root=str(us8k_root / "audio"))


@pytest.mark.parametrize("name", ["esc50", "urbansound8k", "manifest_classification"])
def test_clip_layouts_augment_train_only(name, esc50_root, us8k_root, manifest_root):
    root = {"esc50": esc50_root, "urbansound8k": us8k_root,
            "manifest_classification": manifest_root}[name]

    def build(split, augment):
        return DATASETS.build(name, split=split, root=str(root), sample_rate=8000,
                              segment_seconds=None, augment=augment)

    augment = {"peak_db": [-30.0, -30.0], "shift_max": 0.05}
    train, plain = build("train", augment), build("train", None)
    torch.manual_seed(0)
    shifts = set()
    for i in range(4):
        x, y = plain[i]["wav"], train[i]["wav"]
        assert y.shape == x.shape
        assert float(y.abs().max()) == pytest.approx(10 ** (-30 / 20), rel=1e-4)
        # y is x moved by at most 0.05 s (400 samples), zeros filling, scaled to -30 dBFS
        matches = [k for k in range(-400, 401)
                   if torch.allclose(y, set_peak_db(time_shift(x, k), -30.0), atol=1e-6)]
        assert matches, f"{name} item {i}: not a shift of the plain clip"
        shifts.add(matches[0])
    assert len(shifts) > 1  # a new shift per access
    for split in ("valid", "test"):
        augmented, reference = build(split, augment), build(split, None)
        assert all(torch.equal(augmented[i]["wav"], reference[i]["wav"])
                   for i in range(len(reference)))


# ----------------------------------------------------------------------------- Speech Commands


def test_speech_commands_35_word_task_splits(sc_root):
    def build(split, **kw):
        return DATASETS.build("speech_commands", split=split, root=str(sc_root),
                              noise_prob=0.0, **kw)

    train, valid, test = build("train"), build("valid"), build("test")
    assert train.labels == sorted(["yes", "no", "up", "cat", "dog", "marvin", "wow"])
    assert {c.id.rsplit("_", 1)[1] for c in train.clips} == {"0", "3"}
    assert {c.id.rsplit("_", 1)[1] for c in valid.clips} == {"1"}
    assert {c.id.rsplit("_", 1)[1] for c in test.clips} == {"2"}
    item = valid[0]
    assert item["wav"].shape == (16000,)  # 0.5 s file padded to 1 s
    assert torch.all(item["wav"][8000:] == 0)
    assert valid.labels[int(item["label"])] == item["id"].split("/")[0]


def test_speech_commands_12_class_task(sc_root):
    ds = DATASETS.build("speech_commands", split="valid", root=str(sc_root), task="12",
                        silence_fraction=1.0, unknown_fraction=0.5)
    assert ds.labels == ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
                         "_unknown_", "_silence_"]
    counts = ds.class_counts()
    assert counts[:3] == [1, 1, 1] and sum(counts[3:10]) == 0
    assert counts[10] == math.ceil(0.5 * 3)  # 4 unknown words, capped
    assert counts[11] == 3
    silence = [i for i, c in enumerate(ds.clips) if c.label == 11]
    first, again = ds[silence[0]]["wav"], ds[silence[0]]["wav"]
    assert first.shape == (16000,) and torch.equal(first, again) and first.abs().max() > 0
    assert not torch.equal(first, ds[silence[1]]["wav"])
    every = DATASETS.build("speech_commands", split="valid", root=str(sc_root), task="12",
                           unknown_fraction=None)
    assert every.class_counts()[10] == 4


def test_speech_commands_background_noise_snr(sc_root):
    clean = DATASETS.build("speech_commands", split="train", root=str(sc_root),
                           noise_prob=0.0, segment_seconds=None)
    noisy = DATASETS.build("speech_commands", split="train", root=str(sc_root),
                           noise_prob=1.0, noise_snr_db=[10.0, 10.0], segment_seconds=None)
    x, y = clean[0]["wav"], noisy[0]["wav"]
    noise = y - x
    snr = 10 * torch.log10(x.pow(2).mean() / noise.pow(2).mean())
    assert float(snr) == pytest.approx(10.0, abs=1e-3)


def test_speech_commands_augment_in_train_only(sc_root):
    def build(split, augment):
        return DATASETS.build("speech_commands", split=split, root=str(sc_root), noise_prob=0.0,
                              augment=augment)

    augment = {"peak_db": [-30.0, -30.0], "shift_max": 0.05}
    train, plain = build("train", augment), build("train", None)
    torch.manual_seed(0)
    for i in range(3):
        x, y = plain[i]["wav"], train[i]["wav"]
        assert float(y.abs().max()) == pytest.approx(10 ** (-30 / 20), rel=1e-4)
        assert not torch.allclose(x / x.abs().max(), y / y.abs().max())
    valid, reference = build("valid", augment), build("valid", None)
    assert all(torch.equal(valid[i]["wav"], reference[i]["wav"]) for i in range(len(valid)))


def test_speech_commands_errors(tmp_path, sc_root):
    with pytest.raises(ConfigError, match="data.task"):
        DATASETS.build("speech_commands", split="train", root=str(sc_root), task="20")
    copy = tmp_path / "sc"
    shutil.copytree(sc_root, copy)
    (copy / "testing_list.txt").unlink()
    with pytest.raises(ConfigError, match=r"data\.root: .* has no testing_list\.txt"):
        DATASETS.build("speech_commands", split="train", root=str(copy))


# ----------------------------------------------------------------------------- WSJ0-mix


@pytest.fixture(scope="module")
def wsj_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("wsj0") / "2speakers"
    return fake.make_wsj0mix(root, rates=(8000, 16000), modes=("min", "max"))


def test_wsj0mix_items_and_folder_choice(wsj_root):
    for split in ("train", "valid", "test"):
        ds = DATASETS.build("wsj0mix", split=split, root=str(wsj_root), segment_seconds=None)
        assert len(ds) == 4 and ds.num_sources == 2
        item = ds[1]
        assert item["sources"].shape == (2, item["mix"].shape[-1]) == (2, 4000)  # min: 0.5 s
        assert torch.allclose(item["mix"], item["sources"].sum(0), atol=1e-6)
    longest = DATASETS.build("wsj0mix", split="test", root=str(wsj_root), mode="max",
                             sample_rate=16000, segment_seconds=None)
    assert longest[0]["mix"].shape == (8800,)  # max: 0.55 s at 16 kHz
    # the parent of 2speakers/ works as root too
    parent = DATASETS.build("wsj0mix", split="test", root=str(wsj_root.parent))
    assert parent.examples == DATASETS.build("wsj0mix", split="test", root=str(wsj_root)).examples


def test_wsj0mix_segments_keep_mix_and_sources_aligned(wsj_root):
    ds = DATASETS.build("wsj0mix", split="train", root=str(wsj_root), segment_seconds=0.2)
    for _ in range(3):
        item = ds[0]
        assert item["mix"].shape == (1600,) and item["sources"].shape == (2, 1600)
        assert torch.allclose(item["mix"], item["sources"].sum(0), atol=1e-6)


def test_wsj0mix_three_speakers_and_errors(tmp_path, wsj_root):
    root3 = fake.make_wsj0mix(tmp_path / "3mix", num_speakers=3, per_split=2)
    item = DATASETS.build("wsj0mix", split="valid", root=str(root3), num_speakers=3)[0]
    assert item["sources"].shape[0] == 3
    with pytest.raises(ConfigError, match=r"data\.root: .* has no wav8k/min/tr"):
        DATASETS.build("wsj0mix", split="train", root=str(tmp_path))
    with pytest.raises(ConfigError, match="data.sample_rate"):
        DATASETS.build("wsj0mix", split="train", root=str(wsj_root), sample_rate=44100)
    with pytest.raises(ConfigError, match="data.mode"):
        DATASETS.build("wsj0mix", split="train", root=str(wsj_root), mode="mid")


def test_wsj0mix_missing_source_file_fails_when_built(tmp_path, wsj_root):
    copy = tmp_path / "2speakers"
    shutil.copytree(wsj_root / "wav8k/min/tt", copy / "wav8k/min/tt")
    gone = sorted((copy / "wav8k/min/tt/s2").glob("*.wav"))[1]
    gone.unlink()
    with pytest.raises(ConfigError, match=(r"^data\.root: 1 of the 12 audio files the test split "
                                           rf"names are missing \(first: {gone}\); complete")):
        DATASETS.build("wsj0mix", split="test", root=str(copy))


def test_wsj0mix_speaker_ids_from_file_names():
    name = "01aa010k_1.3053_01po0310_-1.3053"
    assert wsj0mix.speaker_of(name, 0) == "01a" and wsj0mix.speaker_of(name, 1) == "01p"
    assert wsj0mix.utterance_of(name, 1) == "01po0310"


def test_wsj0mix_dynamic_mixing_draws_distinct_speakers(wsj_root):
    ds = DATASETS.build("wsj0mix", split="train", root=str(wsj_root), segment_seconds=None,
                        dynamic_mixing=True)
    assert set(ds.pool) <= set(fake.WSJ0_SPEAKERS) and len(ds) == 4
    files = {p: ds_load(p) for paths in ds.pool.values() for p in paths}
    speaker_of_file = {p: s for s, paths in ds.pool.items() for p in paths}
    for _ in range(5):
        item = ds[0]
        mix, sources = item["mix"], item["sources"]
        assert torch.allclose(mix, sources.sum(0), atol=1e-5)
        found = []
        for source in sources:  # each source is a scaled prefix of one pool file
            for path, wav in files.items():
                ref = wav[: source.shape[-1]]
                cos = torch.dot(ref, source) / (ref.norm() * source.norm())
                if cos > 0.9999:
                    found.append(speaker_of_file[path])
        assert len(found) == 2 and found[0] != found[1]
        levels = 20 * torch.log10(sources.pow(2).mean(-1).sqrt())
        assert float(levels.max() - levels.min()) <= 5.0 + 1e-3
    valid = DATASETS.build("wsj0mix", split="valid", root=str(wsj_root), dynamic_mixing=True)
    assert not valid.dynamic_mixing  # evaluation keeps the official mixtures


def test_mix_utterances_follows_the_wsj0_2mix_level_convention():
    from audionets.data.layouts import check_gain_range, mix_utterances
    from audionets.data.transforms import active_rms

    rate, gen = 8000, torch.Generator().manual_seed(0)
    talk = torch.randn(8000, generator=gen)
    talk[3000:5000] = 0.001 * talk[3000:5000]  # a pause: must not lower the active level
    padded = torch.cat([torch.zeros(500), talk, torch.zeros(6000)])  # a wsj0-mix "max" file
    differences = []
    for _ in range(400):
        mix, sources = mix_utterances([padded, 2.0 * talk], rate, gen, (0.0, 5.0))
        assert torch.equal(mix, sources.sum(0)) and sources.shape == (2, 8000)
        assert sources[0, 0] != 0  # the zero padding was dropped, not mixed
        levels = [20 * math.log10(active_rms(x, rate)) for x in sources]
        differences.append(levels[1] - levels[0])
    differences = np.array(differences)
    # uniform in [0, 5] dB with a random sign, as wsj0-2mix: mean |difference| 2.5 dB
    assert np.abs(differences).max() <= 5.0 + 1e-6
    assert abs(np.abs(differences).mean() - 2.5) < 0.25
    assert 0.4 < (differences > 0).mean() < 0.6
    with pytest.raises(ConfigError, match="data.gain_db: expected 0 <= low <= high"):
        check_gain_range([-5, 5])


def ds_load(path):
    from audionets.data.layouts import load_mono

    return load_mono(path, 8000)


def test_wsj0mix_dynamic_mixing_speed_perturbation(wsj_root):
    ds = DATASETS.build("wsj0mix", split="train", root=str(wsj_root), segment_seconds=None,
                        dynamic_mixing=True, speed_perturb=[1.25, 1.25])
    shortest = min(ds_load(p).shape[-1] for paths in ds.pool.values() for p in paths)
    assert ds[0]["mix"].shape[-1] <= round(4400 / 1.25) + 1
    assert ds[0]["mix"].shape[-1] >= round(shortest / 1.25) - 1
    with pytest.raises(ConfigError, match="data.speed_perturb"):
        DATASETS.build("wsj0mix", split="train", root=str(wsj_root), dynamic_mixing=True,
                       speed_perturb=[1.1, 0.9])


# ----------------------------------------------------------------------------- WHAM!


def test_wham_mixture_kinds(tmp_path):
    root = fake.make_wham(tmp_path / "wham", rates=(8000, 16000))
    clean = DATASETS.build("wham", split="test", root=str(root), mixture="clean")[0]
    both = DATASETS.build("wham", split="test", root=str(root), mixture="both")[0]
    single = DATASETS.build("wham", split="test", root=str(root), mixture="single",
                            sample_rate=16000, segment_seconds=None)[0]
    assert torch.equal(clean["sources"], both["sources"])  # targets stay the clean sources
    noise = both["mix"] - clean["mix"]
    assert noise.abs().max() > 0.01 and torch.allclose(both["mix"], both["sources"].sum(0) + noise)
    assert single["sources"].shape == (1, 8000)
    assert not torch.allclose(single["mix"], single["sources"][0])
    with pytest.raises(ConfigError, match="data.mixture"):
        DATASETS.build("wham", split="test", root=str(root), mixture="noisy")
    shutil.rmtree(root / "wav8k" / "min" / "cv" / "mix_both")
    with pytest.raises(ConfigError, match=r"has no wav8k/min/cv/mix_both"):
        DATASETS.build("wham", split="valid", root=str(root), mixture="both")


# ----------------------------------------------------------------------------- LibriMix


def test_librimix_metadata_relocated_and_mixture_kinds(tmp_path):
    root = fake.make_librimix(tmp_path / "librimix")
    train = DATASETS.build("librimix", split="train", root=str(root), segment_seconds=None)
    assert len(train) == 3
    assert train.examples[0].mix == (root / "Libri2Mix/wav8k/min/train-360/mix_clean"
                                     / f"{train.examples[0].id}.wav")
    item = train[0]
    assert torch.allclose(item["mix"], item["sources"].sum(0), atol=1e-6)
    small = DATASETS.build("librimix", split="train", root=str(root / "Libri2Mix"),
                           train_subset="train-100")
    assert "train-100" in str(small.examples[0].mix)
    both = DATASETS.build("librimix", split="test", root=str(root), mixture="both",
                          segment_seconds=None)[0]
    assert both["sources"].shape[0] == 2
    assert (both["mix"] - both["sources"].sum(0)).abs().max() > 0.01  # the noise
    single = DATASETS.build("librimix", split="valid", root=str(root), mixture="single")
    assert "/dev/" in str(single.examples[0].mix) and single[0]["sources"].shape[0] == 1


def test_librimix_three_speakers_and_errors(tmp_path):
    root = fake.make_librimix(tmp_path / "lm", num_speakers=3, per_split=1)
    assert DATASETS.build("librimix", split="test", root=str(root), num_speakers=3)[0][
        "sources"].shape[0] == 3
    with pytest.raises(ConfigError,
                       match=r"has no Libri2Mix/wav8k/min/metadata/mixture_test_mix_clean\.csv"):
        DATASETS.build("librimix", split="test", root=str(root))
    source = DATASETS.build("librimix", split="test", root=str(root), num_speakers=3
                            ).examples[0].sources[2]
    source.unlink()  # the metadata CSV still lists it
    with pytest.raises(ConfigError, match=rf"1 of the 4 audio files the test split names are "
                                          rf"missing \(first: {source}\)"):
        DATASETS.build("librimix", split="test", root=str(root), num_speakers=3)
    shutil.rmtree(root / "Libri3Mix/wav8k/min/test")
    with pytest.raises(ConfigError, match="not found"):
        DATASETS.build("librimix", split="test", root=str(root), num_speakers=3)


# ----------------------------------------------------------------------------- tts_mix


@pytest.mark.parametrize("name", ["esc50", "speech_commands", "urbansound8k", "wsj0mix",
                                  "wham", "librimix", "tts_mix"])
def test_unset_root_names_data_root(name):
    with pytest.raises(ConfigError, match=r"^data\.root: not set; .* and pass data\.root=PATH$"):
        DATASETS.build(name, split="train")


@pytest.mark.skipif(tts_mix.espeak_binary() is None,
                    reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_tts_mix_command_builds_a_pool(tmp_path, capsys):
    assert main(["prepare-tts-mix", str(tmp_path / "pool"), "--num-utterances", "6",
                 "--engines", "espeak-ng", "--workers", "1"]) == 0
    assert "speech pool ready" in capsys.readouterr().out
    with open(tmp_path / "pool" / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and len({r["voice"] for r in rows}) == 6
    assert all(sf.info(str(tmp_path / "pool" / r["path"])).frames == int(r["num_frames"])
               and sf.info(str(tmp_path / "pool" / r["path"])).samplerate == 8000 for r in rows)


def test_prepare_tts_mix_refuses_a_silly_sample_rate(tmp_path):
    with pytest.raises(ConfigError, match="sample_rate"):
        main(["prepare-tts-mix", str(tmp_path / "pool"), "--sample-rate", "1", "--debug"])
    assert not (tmp_path / "pool").exists()


def test_tts_mix_missing_pool_without_auto_prepare(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.root: .* has no manifest\.csv"):
        DATASETS.build("tts_mix", split="train", root=str(tmp_path), auto_prepare=False)


def test_tts_mix_is_not_built_by_every_torchrun_process(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="with torchrun build the pool first: audionets "
                                          "prepare-tts-mix"):
        DATASETS.build("tts_mix", split="train", root=str(tmp_path))
    assert list(tmp_path.iterdir()) == []
