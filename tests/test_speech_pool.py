"""The synthesized speech pool: voice splits, text variety, building/resuming, tts_mix mixing."""

from __future__ import annotations

import csv
import hashlib
import json
import random
import shutil
from collections import Counter

import numpy as np
import pytest
import torch

from audionets.data import speech_pool, synthesizers
from audionets.data.synthesizers import Prosody, Voice
from audionets.data.transforms import active_rms
from audionets.errors import ConfigError
from audionets.registry import DATASETS

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")
needs_festival = pytest.mark.skipif(not synthesizers.festival_voices(),
                                    reason="festival voices are not installed")
TINY = speech_pool.PoolSettings(num_utterances=40, seed=1, engines=("espeak-ng",))


def _fake_voices() -> list[Voice]:
    languages = ["en-us", "en-gb", "de", "cs", "fi", "fr", "pt", "nl"] + [f"l{i}" for i in range(60)]
    variants = ["default", "m1", "m3", "f2", "klatt3", "Andy"] + [f"v{i}" for i in range(40)]
    voices = [Voice("espeak-ng", lang if var == "default" else f"{lang}+{var}",
                    synthesizers.base_language(lang), var)
              for lang in languages for var in variants]
    voices += [Voice("festival", name, lang, speaker)
               for name, (lang, speaker, _) in synthesizers.FESTIVAL_VOICES.items()]
    return voices



def _espeak_voices() -> list[Voice]:
    return [v for v in _fake_voices() if v.engine != "festival"]


def plan_digest(items: list) -> str:
    """16 hex digits of the sha256 of every planned item (its repr: voice, text, prosody,
    split, path): equal digests, equal plans."""
    return hashlib.sha256("\n".join(map(repr, items)).encode()).hexdigest()[:16]


def test_the_plan_of_fixed_settings_is_pinned():
    """Plans as they were before their voice turns were shared with kws_tts: a refactoring
    must not change a pool that was built already (its cache key would not notice)."""
    voices = _fake_voices()
    jobs = speech_pool.plan(speech_pool.PoolSettings(num_utterances=200, seed=7), voices)
    assert jobs[0] == speech_pool.Utterance(
        "train-000000", "train", Voice("espeak-ng", "de+v27", "de", "v27"),
        "pruamang 608 choatsas nearly sissaiksheing, bremfiardspiat 1318 kun after.",
        Prosody(pitch=42, pitch_range=108, rate=1.086, word_gap=4, warp=0.987))
    assert jobs[180] == speech_pool.Utterance(
        "valid-000000", "valid", Voice("espeak-ng", "l7+v0", "l7", "v0"),
        "orange grobait 11 keiksha nar 24.",
        Prosody(pitch=27, pitch_range=158, rate=1.232, word_gap=1, warp=0.968))
    assert jobs[199].id == "test-000009" and jobs[199].voice.name == "l16+v4"
    pinned = {(200, 7, 0.2, "all"): "b6452ec70371310e", (300, 2, 1.0, "all"): "c34e40a102aa0e50",
              (60, 0, 0.5, "espeak-ng"): "9f0aa768fa03608e"}
    for (count, seed, fraction, which), digest in pinned.items():
        settings = speech_pool.PoolSettings(num_utterances=count, seed=seed,
                                            festival_fraction=fraction)
        planned = speech_pool.plan(settings, voices if which == "all" else _espeak_voices())
        assert plan_digest(planned) == digest, (count, seed, fraction, which)

def test_splits_share_no_language_no_variant_no_speaker():
    parts = synthesizers.split_voices(_fake_voices())
    assert all(parts[s] for s in ("train", "valid", "test"))
    for a, b in [("train", "valid"), ("train", "test"), ("valid", "test")]:
        assert not {v.language for v in parts[a]} & {v.language for v in parts[b]}
        assert not {v.variant for v in parts[a]} & {v.variant for v in parts[b]}
    # the old tts_mix bug: de+m3 in test with en-us+m3 in training cannot happen
    m3 = {synthesizers.split_of(v) for v in _fake_voices() if v.variant == "m3"} - {None}
    assert len(m3) == 1
    festival = {v.name: s for s, vs in parts.items() for v in vs if v.engine == "festival"}
    assert {festival[n] for n in ("czech_dita", "czech_krb", "czech_machac", "czech_ph")} == {"test"}
    nsk = [s for name, s in festival.items() if "NSK" in name]
    assert len(set(nsk)) == 1  # one speaker, one split
    assert all(v.language != "en" for s in ("valid", "test") for v in parts[s])


def test_split_is_a_fixed_function_of_the_names():
    voices = _fake_voices()
    shuffled = voices[:]
    random.Random(3).shuffle(shuffled)
    a, b = synthesizers.split_voices(voices), synthesizers.split_voices(shuffled)
    assert {s: sorted(v.name for v in a[s]) for s in a} == {s: sorted(v.name for v in b[s]) for s in b}


def test_sentences_vary():
    rng = random.Random(0)
    english = [synthesizers.sentence(rng, "en") for _ in range(500)]
    other = [synthesizers.sentence(rng, "cs") for _ in range(500)]
    assert len(set(english)) == 500 and len(set(other)) == 500
    words = Counter(w.strip(",.?!") for s in english + other for w in s.split())
    assert len(words) > 1500
    assert all(3 <= len(s.split()) <= 9 for s in english + other)
    numbers = synthesizers.sentence(rng, "hi", numbers_only=True)
    assert all(w.strip(",.?!").isdigit() for w in numbers.split())


def test_missing_program_names_the_package(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match=r"^espeak-ng is not installed: apt-get install -y "
                                          r"espeak-ng$"):
        synthesizers.installed_voices(("espeak-ng",))
    with pytest.raises(ConfigError, match=r"^text2wave is not installed: apt-get install -y "
                                          r"festival$"):
        synthesizers.installed_voices(("festival",))


@needs_espeak
def test_synthesize_rate_and_warp():
    voice = Voice("espeak-ng", "en-us+m3", "en", "m3")
    text = "the yellow bridge is falling down in the morning rain"
    plain = synthesizers.synthesize(voice, text, 8000)
    assert plain.dtype == torch.float32 and plain.dim() == 1 and plain.abs().max() > 0.05
    warped = synthesizers.synthesize(voice, text, 8000, Prosody(warp=1.1))
    # read as recorded 10 % faster: 1/1.1 of the samples (to the 50 Hz rounding of the rate)
    assert warped.shape[0] / plain.shape[0] == pytest.approx(1 / 1.1, rel=0.01)
    faster = synthesizers.synthesize(voice, text, 8000, Prosody(rate=1.5))
    assert faster.shape[0] < 0.8 * plain.shape[0]


@needs_festival
def test_festival_speaks_several_items_in_one_process():
    voice = synthesizers.festival_voices()[0]
    spoken = synthesizers.synthesize_many(voice, [("one two three.", Prosody()),
                                                  ("one two three.", Prosody(rate=0.7))], 8000)
    (fast, text), (slow, _) = spoken
    assert text == "one two three." and fast.abs().max() > 0.05 and slow.abs().max() > 0.05
    assert slow.shape[0] > 1.2 * fast.shape[0]  # Duration_Stretch 1/0.7


@pytest.mark.skipif("pc_diphone" not in {v.name for v in synthesizers.festival_voices()},
                    reason="festvox-itapc16k is not installed")
def test_festival_text_it_fails_on_is_spoken_as_numbers():
    voice = Voice("festival", "pc_diphone", "it", "pc")
    bad = "emsyr shuslal dark finally?"  # pc_diphone stops with a Scheme error on it
    spoken = synthesizers.synthesize_many(voice, [("uno due tre.", Prosody()), (bad, Prosody())],
                                          8000)
    assert spoken[0][1] == "uno due tre."
    assert spoken[1][1] == synthesizers.numbers_instead(bad) != bad
    assert all(word.strip(".").isdigit() for word in spoken[1][1].split())
    assert spoken[1][0].abs().max() > 0.05


@pytest.fixture(scope="module")
def pool_root(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    root = tmp_path_factory.mktemp("pool")
    speech_pool.build(root, TINY, workers=2, progress=False)
    return root


def _rows(root):
    with open(root / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@needs_espeak
def test_pool_files_manifest_and_splits(pool_root):
    rows = _rows(pool_root)
    assert len(rows) == 40
    assert Counter(r["split"] for r in rows) == {"train": 36, "valid": 2, "test": 2}
    for row in rows:
        wav, rate = speech_pool.audio.load(pool_root / row["path"])
        assert rate == 8000 and wav.shape == (1, int(row["num_frames"]))
        assert synthesizers.split_of(Voice(row["engine"], row["voice"], row["language"],
                                           row["variant"])) == row["split"]
        assert 60.0 <= float(row["f0_hz"]) <= 400.0
    train = {r["voice"] for r in rows if r["split"] == "train"}
    assert len(train) == 36  # voices taken in turns: all distinct in a small pool
    stats = json.loads((pool_root / "build.json").read_text())
    assert stats["utterances"] == 40 and stats["real_time_factor"] > 0


@needs_espeak
def test_pool_is_cached_keyed_and_resumable(pool_root, tmp_path):
    manifest = pool_root / "manifest.csv"
    stamp = manifest.stat().st_mtime_ns
    assert speech_pool.build(pool_root, TINY, progress=False) == manifest
    assert manifest.stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="made with"):
        speech_pool.build(pool_root, speech_pool.PoolSettings(num_utterances=41, seed=1,
                                                               engines=("espeak-ng",)))
    # an interrupted build: no manifest yet and three utterances missing
    copy = tmp_path / "pool"
    shutil.copytree(pool_root, copy)
    (copy / "manifest.csv").unlink()
    gone = [copy / r["path"] for r in _rows(pool_root)[:3]]
    for path in gone:
        path.unlink()
    speech_pool.build(copy, TINY, progress=False)
    assert json.loads((copy / "build.json").read_text())["synthesized_now"] == 3
    assert _rows(copy) == _rows(pool_root)  # the same plan, the same files


def _copy_without_f0(root, copy):
    """A copy of the pool at ``root`` as an audionets before the f0_hz column made it."""
    shutil.copytree(root, copy)
    with open(copy / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=speech_pool.MANIFEST_COLUMNS[:-1])
        writer.writeheader()
        writer.writerows({k: v for k, v in row.items() if k != "f0_hz"} for row in _rows(root))
    return copy


@needs_espeak
def test_a_pool_made_before_the_f0_column_gets_it_in_place(pool_root, tmp_path):
    copy = _copy_without_f0(pool_root, tmp_path / "pool")
    rows = _rows(pool_root)
    stamps = {p: p.stat().st_mtime_ns for p in (copy / "wav").glob("*/*.wav")}
    build_json = (copy / "build.json").read_text()
    speech_pool.build(copy, TINY, workers=1, progress=False)
    assert _rows(copy) == rows
    assert stamps == {p: p.stat().st_mtime_ns for p in (copy / "wav").glob("*/*.wav")}
    assert (copy / "build.json").read_text() == build_json  # the build's own figures kept


@pytest.mark.parametrize("f0", [90.0, 131.0, 220.0, 330.0])
def test_median_f0_of_a_harmonic_tone_with_unvoiced_gaps(f0):
    rate = 8000
    t = torch.arange(2 * rate) / rate
    tone = sum(torch.sin(2 * torch.pi * k * f0 * t) / k for k in range(1, 8))
    hiss = torch.randn(2000, generator=torch.Generator().manual_seed(0))
    tone[rate // 2:rate // 2 + 2000] = 0.01 * hiss  # an unvoiced stretch
    assert speech_pool.median_f0(0.3 * tone, rate) == pytest.approx(f0, rel=0.02)


def test_pool_settings_are_checked():
    with pytest.raises(ConfigError, match="sample_rate"):
        speech_pool.PoolSettings(sample_rate=1)
    with pytest.raises(ConfigError, match="num_utterances"):
        speech_pool.PoolSettings(num_utterances=2)
    with pytest.raises(ConfigError, match=r"festival_fraction: need a value in \[0, 1\], got -0.1"):
        speech_pool.PoolSettings(festival_fraction=-0.1)
    with pytest.raises(ConfigError, match=r"warp: need a value in \[0, 0.5\), got 0.5"):
        speech_pool.PoolSettings(warp=0.5)


@needs_espeak
def test_tts_mix_splits_hold_disjoint_voices(pool_root):
    sets = {}
    for split in ("train", "valid", "test"):
        ds = DATASETS.build("tts_mix", split=split, root=str(pool_root), num_mixtures=20,
                            segment_seconds=0.5, auto_prepare=False)
        sets[split] = set(ds.voices)
        item = ds[0]
        assert item["mix"].shape == (4000,) and item["sources"].shape == (2, 4000)
        assert torch.allclose(item["mix"], item["sources"].sum(0), atol=1e-6)
    assert not (sets["train"] & sets["valid"] or sets["train"] & sets["test"]
                or sets["valid"] & sets["test"])
    test = DATASETS.build("tts_mix", split="test", root=str(pool_root), num_mixtures=5,
                          segment_seconds=None, auto_prepare=False)
    assert torch.equal(test[3]["mix"], test[3]["mix"])  # valid/test items are fixed
    assert test[3]["mix"].shape[0] > 8000  # full length ("min" mode), not a segment


@needs_espeak
def test_tts_mix_draws_mixture_kinds_in_proportion(pool_root):
    ds = DATASETS.build("tts_mix", split="train", root=str(pool_root), num_mixtures=300,
                        segment_seconds=0.25, auto_prepare=False,
                        mix_kinds={"tts": 0.5, "tts_builtin": 0.3, "builtin": 0.2})
    torch.manual_seed(0)
    kinds = Counter()
    for i in range(300):
        parts = ds[i]["id"].split("_")
        tts = sum(p.startswith("train-") for p in parts)
        kinds[{2: "tts", 1: "tts_builtin", 0: "builtin"}[tts]] += 1
    for kind, share in {"tts": 0.5, "tts_builtin": 0.3, "builtin": 0.2}.items():
        assert abs(kinds[kind] / 300 - share) < 0.08, kinds


@needs_espeak
def test_tts_mix_noise_is_at_the_asked_snr(pool_root):
    ds = DATASETS.build("tts_mix", split="valid", root=str(pool_root), num_mixtures=4,
                        segment_seconds=1.0, auto_prepare=False, noise_snr_db=[20, 20])
    item = ds[0]
    noise = item["mix"] - item["sources"].sum(0)
    speech = item["sources"].sum(0)
    snr = 20 * np.log10(active_rms(speech, 8000) / float(noise.pow(2).mean().sqrt()))
    assert snr == pytest.approx(20.0, abs=0.05)


@needs_espeak
def test_tts_mix_refuses_a_pool_of_other_settings(pool_root):
    with pytest.raises(ConfigError, match=r"data\.root: .* made with"):
        DATASETS.build("tts_mix", split="train", root=str(pool_root),
                       pool={"num_utterances": 99, "engines": ["espeak-ng"]})
    ds = DATASETS.build("tts_mix", split="train", root=str(pool_root),
                        pool={"num_utterances": 40, "seed": 1, "engines": ["espeak-ng"]})
    assert len(ds.voices) == 36


def _semitones_apart(f0, first, other):
    return abs(12 * np.log2(f0[first] / f0[other]))


@needs_espeak
@pytest.mark.parametrize("num_speakers", [2, 3])
def test_tts_mix_close_pitch_draws_partners_near_the_first_talkers_f0(pool_root, num_speakers):
    rows = {r["id"]: r for r in _rows(pool_root) if r["split"] == "train"}
    f0 = {name: float(row["f0_hz"]) for name, row in rows.items()}

    def near(first, other, semitones=3.0):
        return _semitones_apart(f0, first, other) <= semitones

    def ids(close_pitch):
        ds = DATASETS.build("tts_mix", split="train", root=str(pool_root), num_mixtures=200,
                            segment_seconds=0.1, auto_prepare=False, num_speakers=num_speakers,
                            close_pitch=close_pitch, close_semitones=3.0)
        torch.manual_seed(0)
        return [ds[i]["id"].split("_") for i in range(200)]

    close = 0
    for first, *others in ids(1.0):
        assert len({rows[name]["voice"] for name in [first, *others]}) == num_speakers
        if all(near(first, other) for other in others):
            close += 1
        else:  # only when the split has too few other voices that close
            candidates = {rows[n]["voice"] for n in rows if near(first, n)}
            assert len(candidates - {rows[first]["voice"]}) < num_speakers - 1
    assert close > 150  # measured: 200 of 200 (2 talkers), 192 (3)
    independent = sum(all(near(first, o) for o in others) for first, *others in ids(0.0))
    assert independent < close - 50  # random pairs are rarely that close (measured: 74, 40)


def test_tts_mix_checks_its_arguments(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.root: .* has no manifest\.csv"):
        DATASETS.build("tts_mix", split="train", root=str(tmp_path), auto_prepare=False)
    from audionets.data.tts_mix import _check_mix_kinds

    with pytest.raises(ConfigError, match="unknown"):
        _check_mix_kinds({"speech": 1.0})
    with pytest.raises(ConfigError, match="positive sum"):
        _check_mix_kinds({"tts": 0.0})
    from audionets.data.tts_mix import _check_close_pitch

    with pytest.raises(ConfigError, match=r"data\.close_pitch: need a share in \[0, 1\], got 1.5"):
        _check_close_pitch(1.5, 2.0)
    with pytest.raises(ConfigError, match="data.close_semitones: need a positive"):
        _check_close_pitch(0.3, 0.0)


@needs_espeak
def test_tts_mix_close_pitch_on_a_pool_without_f0_says_how_to_add_it(pool_root, tmp_path):
    copy = _copy_without_f0(pool_root, tmp_path / "pool")
    with pytest.raises(ConfigError, match=f"add it with audionets prepare-tts-mix {copy}"):
        DATASETS.build("tts_mix", split="train", root=str(copy), close_pitch=0.3)
    assert len(DATASETS.build("tts_mix", split="train", root=str(copy)).voices) == 36


@needs_espeak
def test_espeak_text_it_crashes_on_is_spoken_as_numbers():
    voice = Voice("espeak-ng", "kl+edward", "kl", "edward")
    bad = "864 ast sheing slanmul mbe?"  # espeak-ng 1.51 exits with a segmentation fault
    (wav, text), = synthesizers.synthesize_many(voice, [(bad, Prosody())], 8000)
    assert text == synthesizers.numbers_instead(bad) and wav.abs().max() > 0.05


def _jobs(voices: list[Voice]) -> list[speech_pool.Utterance]:
    return [speech_pool.Utterance(f"train-{i:06d}", "train", v, f"text {i}.", Prosody())
            for i, v in enumerate(voices)]


def test_every_utterance_of_a_batch_is_spoken_by_its_own_voice(tmp_path, monkeypatch):
    calls = []

    def fake(voice, items, sample_rate):
        calls.append((voice.name, [text for text, _ in items]))
        return [(torch.full((80,), 0.5), text) for text, _ in items]

    monkeypatch.setattr(synthesizers, "synthesize_many", fake)
    a, b = Voice("espeak-ng", "de+m3", "de", "m3"), Voice("espeak-ng", "fr+f2", "fr", "f2")
    (tmp_path / "wav" / "train").mkdir(parents=True)
    speech_pool._synthesize_batch(str(tmp_path), _jobs([a, a, b, a]), 8000)
    assert calls == [("de+m3", ["text 0.", "text 1."]), ("fr+f2", ["text 2."]),
                     ("de+m3", ["text 3."])]


def test_an_utterance_that_cannot_be_spoken_is_marked_and_left_out(tmp_path, monkeypatch):
    calls = []

    def fake(voice, items, sample_rate):
        calls.append(voice.name)
        if voice.name == "kl+edward":
            raise ConfigError("espeak-ng -v kl+edward failed (exit -11)")
        return [(torch.full((80,), 0.5), text) for text, _ in items]

    monkeypatch.setattr(synthesizers, "synthesize_many", fake)
    good, bad = Voice("espeak-ng", "de+m3", "de", "m3"), Voice("espeak-ng", "kl+edward", "kl",
                                                              "edward")
    (tmp_path / "wav" / "train").mkdir(parents=True)
    jobs = _jobs([good, bad, good])
    speech_pool._synthesize_batch(str(tmp_path), jobs, 8000)
    assert (tmp_path / jobs[0].path).exists() and (tmp_path / jobs[2].path).exists()
    assert not (tmp_path / jobs[1].path).exists()
    assert "exit -11" in (tmp_path / jobs[1].path).with_suffix(".failed").read_text()
    assert speech_pool.is_done(tmp_path / jobs[1].path)  # a resumed build does not retry it


def test_voice_turns_use_every_voice_of_an_engine_before_repeating_one():
    voices = _fake_voices()
    festival = [v for v in voices if v.engine == "festival"][:3]
    espeak = [v for v in voices if v.engine == "espeak-ng"][:4]
    turns = speech_pool.VoiceTurns("train", festival + espeak, random.Random(0), 0.5)
    taken = [turns.take() for _ in range(60)]
    for group in (festival, espeak):
        mine = [v for v in taken if v in group]
        assert 10 < len(mine) < 50  # both engines, about half each
        assert all(set(mine[i:i + len(group)]) == set(group)  # each round: every voice once
                   for i in range(0, len(mine) - len(group) + 1, len(group)))
    only_festival = speech_pool.VoiceTurns("valid", festival, random.Random(0), 0.0)
    assert {only_festival.take() for _ in range(6)} == set(festival)  # whatever the share
    with pytest.raises(ConfigError, match="the test split has no voices; install more"):
        speech_pool.VoiceTurns("test", [], random.Random(0), 0.5)


def test_settings_difference_names_what_differs_and_only_that():
    stored = {"version": 1, "seed": 0, "words": list("abcdefghij"), "per_word": [2, 1, 1]}
    asked = {"version": 2, "seed": 0, "words": list("abcdefghi"), "per_word": [2, 1, 1]}
    assert speech_pool.settings_difference(stored, asked) == "version 1 (asked: 2), other words"
    assert speech_pool.settings_difference({"seed": 0}, {"seed": 0, "warp": 0.1}) == \
        "warp None (asked: 0.1)"
    assert speech_pool.settings_difference(None, asked) == "none recorded"
    assert speech_pool.settings_difference([1], asked) == "none recorded"
