"""The synthetic Speech Commands word set: plan (voice-disjoint splits), clip shaping, a tiny
build in the Speech Commands layout read by the speech_commands dataset, and resuming it."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch

import audionets.data  # noqa: F401  (registers the datasets)
from audionets import audio
from audionets.data import kws_tts, synthesizers
from audionets.data.synthesizers import Prosody, Voice
from audionets.errors import ConfigError
from audionets.registry import DATASETS

from tests import recipe_scripts
from tests.test_speech_pool import _espeak_voices, _fake_voices, plan_digest

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")
TINY = kws_tts.WordSetSettings(per_word=(2, 1, 1), seed=3, engines=("espeak-ng",),
                               words=("yes", "no", "stop"), noise_seconds=2)


def test_plan_is_voice_disjoint_and_in_the_speech_commands_naming():
    settings = kws_tts.WordSetSettings(per_word=(30, 5, 8))
    takes = kws_tts.plan(settings, _fake_voices())
    assert len(takes) == 35 * (30 + 5 + 8)
    by_split = {s: [t for t in takes if t.split == s] for s in ("train", "valid", "test")}
    for a, b in [("train", "valid"), ("train", "test"), ("valid", "test")]:
        for attribute in ("language", "variant", "name"):
            assert not ({getattr(t.voice, attribute) for t in by_split[a]}
                        & {getattr(t.voice, attribute) for t in by_split[b]})
        speakers = [{t.path.split("/")[1].split("_")[0] for t in by_split[s]} for s in (a, b)]
        assert not speakers[0] & speakers[1]
    assert not {t.voice.name for t in takes} & synthesizers.NUMBERS_ONLY
    for take in takes:
        word, name = take.path.split("/")
        assert word == take.text and word in kws_tts.WORDS
        speaker, nohash, n = name[:-4].split("_", 2)
        assert speaker == kws_tts.speaker_id(take.voice) and nohash == "nohash" and n.isdigit()
    assert len({t.path for t in takes}) == len(takes)
    # each word is spoken by many voices, festival ones among them
    assert len({t.voice for t in by_split["train"] if t.text == "yes"}) == 30
    assert any(t.voice.engine == "festival" for t in by_split["train"])
    assert kws_tts.plan(settings, _fake_voices()) == takes  # fixed by settings and voices



def test_the_plan_of_fixed_settings_is_pinned():
    """Plans of version 2 (each split from its own generator), pinned so that a change to the
    plan is a deliberate one, with a new VERSION."""
    settings = kws_tts.WordSetSettings(per_word=(5, 2, 2), seed=7, words=("yes", "no", "stop"))
    takes = kws_tts.plan(settings, _fake_voices())
    assert takes[0] == kws_tts.Take(
        "yes/b4e9871f_nohash_0.wav", "train", Voice("espeak-ng", "l20+f2", "l20", "f2"), "yes",
        Prosody(pitch=49, pitch_range=103, rate=1.024, word_gap=0, warp=1.0))
    assert takes[14] == kws_tts.Take(
        "stop/5eb34d92_nohash_0.wav", "train", Voice("espeak-ng", "l0+Andy", "l0", "Andy"),
        "stop", Prosody(pitch=38, pitch_range=157, rate=0.935, word_gap=0, warp=1.005))
    assert takes[-1].path == "stop/9415d17b_nohash_0.wav" and takes[-1].split == "test"
    assert plan_digest(takes) == "d0f3795b2480bbc6"
    pinned = {((20, 4, 6), 2, 0.5, "all"): "91b5e3b4b5be8755",
              ((3, 1, 1), 0, 1.0, "espeak-ng"): "fcf97e5227492d76"}
    for (per_word, seed, fraction, which), digest in pinned.items():
        settings = kws_tts.WordSetSettings(per_word=per_word, seed=seed,
                                           festival_fraction=fraction)
        planned = kws_tts.plan(settings, _fake_voices() if which == "all" else _espeak_voices())
        assert plan_digest(planned) == digest, (per_word, seed, fraction, which)


def test_more_training_takes_keep_the_validation_and_test_takes():
    """Growing the training split leaves the held-out clips as they were, so models trained on
    either set are scored on the same clips."""
    def held_out(per_word):
        settings = kws_tts.WordSetSettings(per_word=per_word, words=("yes", "no", "stop"))
        return [t for t in kws_tts.plan(settings, _fake_voices()) if t.split != "train"]

    assert held_out((20, 3, 4)) == held_out((60, 3, 4))


def test_fit_word_trims_centres_and_fits_one_second():
    rate = 16000
    word = torch.sin(torch.arange(4000) * 0.3)
    padded = torch.cat([torch.zeros(3000), word, torch.zeros(9000)])
    clip = kws_tts.fit_word(padded, rate)
    assert clip.shape == (rate,)
    assert float(clip.abs().max()) == pytest.approx(0.9, rel=1e-3)
    loud = torch.nonzero(clip.abs() > 0.01).flatten()
    centre = (int(loud[0]) + int(loud[-1])) / 2
    assert centre == pytest.approx(rate / 2, abs=200)
    long_word = torch.sin(torch.arange(int(1.5 * rate)) * 0.3)
    fitted = kws_tts.fit_word(long_word, rate)
    assert fitted.shape == (rate,)
    # sped up to MAX_WORD_SECONDS: the margins stay silent, the word is whole
    margin = int((1 - kws_tts.MAX_WORD_SECONDS) / 2 * rate) - 2
    assert not fitted[:margin].any() and not fitted[-margin:].any()


def test_settings_are_checked():
    for kwargs, key in (({"per_word": (1, 1)}, "per_word"), ({"festival_fraction": 2.0},
                        "festival_fraction"), ({"words": ("Yes!",)}, "words"),
                        ({"noise_seconds": 0}, "noise_seconds"), ({"warp": -0.1}, "warp")):
        with pytest.raises(ConfigError, match=key):
            kws_tts.WordSetSettings(**kwargs)


def test_prepare_kws_tts_refuses_bad_options_before_writing(tmp_path, capsys):
    from audionets.cli import main

    assert main(["prepare-kws-tts", str(tmp_path / "words"), "--festival-fraction", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "festival_fraction" in err[0]
    assert not (tmp_path / "words").exists()


@needs_espeak
def test_tiny_build_layout_dataset_and_resume(tmp_path):
    root = kws_tts.build(tmp_path / "kws", TINY, workers=1, progress=False)
    stats = json.loads((root / "build.json").read_text())
    assert stats["planned"] == 3 * 4 and stats["synthesized_now"] == 12
    clips = {s: [] for s in ("train", "valid", "test")}
    listed = {"valid": (root / "validation_list.txt").read_text().split(),
              "test": (root / "testing_list.txt").read_text().split()}
    for word in TINY.words:
        for path in sorted((root / word).glob("*.wav")):
            rel = f"{word}/{path.name}"
            split = next((s for s, names in listed.items() if rel in names), "train")
            clips[split].append(rel)
            wav, rate = audio.load(path)
            assert rate == 16000 and wav.shape == (1, 16000)
            assert float(wav.abs().max()) == pytest.approx(0.9, abs=0.01)
    failed = len(stats["failed"])
    assert sum(map(len, clips.values())) == 12 - failed >= 10
    assert all(rel in clips[s] for s, names in listed.items() for rel in names)
    speakers = {s: {rel.split("/")[1].split("_")[0] for rel in clips[s]} for s in clips}
    assert not speakers["train"] & (speakers["valid"] | speakers["test"])
    noises = sorted(p.stem for p in (root / "_background_noise_").glob("*.wav"))
    assert noises == ["babble", "brown_noise", "hum", "pink_noise", "white_noise"]
    assert audio.info(root / "_background_noise_" / "hum.wav").num_frames == 2 * 16000

    # the speech_commands dataset reads it unchanged
    for split in ("train", "valid", "test"):
        ds = DATASETS.build("speech_commands", split=split, root=str(root), noise_prob=1.0)
        assert ds.labels == sorted(TINY.words) and len(ds) == len(clips[split])
        item = ds[0]
        assert item["wav"].shape == (16000,) and ds.labels[int(item["label"])] in item["id"]

    # resume: only what is missing is synthesized again, the rest is left as it was
    again = kws_tts.build(root, TINY, workers=1, progress=False)  # finished: returned at once
    assert again == root and json.loads((root / "build.json").read_text()) == stats
    gone = root / clips["train"][0]
    kept = root / clips["train"][1]
    kept_bytes, kept_mtime = kept.read_bytes(), kept.stat().st_mtime_ns
    gone_bytes = gone.read_bytes()
    gone.unlink()
    (root / "testing_list.txt").unlink()  # an interrupted build: the lists come last
    kws_tts.build(root, TINY, workers=1, progress=False)
    resumed = json.loads((root / "build.json").read_text())
    assert resumed["synthesized_now"] == 1 and resumed["clips"] == stats["clips"]
    assert gone.read_bytes() == gone_bytes  # the same take: the plan is fixed by the settings
    assert kept.stat().st_mtime_ns == kept_mtime and kept.read_bytes() == kept_bytes
    assert (root / "testing_list.txt").read_text().split() == listed["test"]

    other = kws_tts.WordSetSettings(per_word=(3, 1, 1), seed=3, engines=("espeak-ng",),
                                    words=TINY.words, noise_seconds=2)
    with pytest.raises(ConfigError, match=r"other settings: per_word \[2, 1, 1\] \(asked: "
                                          r"\[3, 1, 1\]\); use another folder or delete it$"):
        kws_tts.build(root, other, workers=1, progress=False)
    key = json.loads((root / "kws_tts.json").read_text())
    (root / "kws_tts.json").write_text(json.dumps({**key, "version": 1,
                                                   "words": list(kws_tts.WORDS)}))
    with pytest.raises(ConfigError, match=r"other settings: version 1 \(asked: 2\), other words;"):
        kws_tts.build(root, TINY, workers=1, progress=False)


def test_the_prepare_commands_turn_their_shared_options_into_settings(tmp_path, monkeypatch,
                                                                         capsys):
    """prepare-kws-tts and prepare-tts-mix share --engines, --festival-fraction, --workers
    (cli._shared.add_voice_arguments); options left out keep the settings' defaults."""
    from audionets.cli import main
    from audionets.data import speech_pool

    splits = ("train", "valid", "test")
    (tmp_path / "build.json").write_text(json.dumps({
        "clips": dict.fromkeys(splits, 1), "voices": dict.fromkeys(splits, 1), "failed": [],
        "clips_per_second": 1.0, "utterances": 3, "hours": 0.1, "real_time_factor": 2.0}))
    built = []

    def fake_build(returns):
        def build(root, settings, workers):
            built.append((settings, workers))
            return returns
        return build

    monkeypatch.setattr(kws_tts, "build", fake_build(tmp_path))
    monkeypatch.setattr(speech_pool, "build", fake_build(tmp_path / "manifest.csv"))
    voices = ["--engines", "festival", "--festival-fraction", "0.3", "--workers", "2"]
    assert main(["prepare-kws-tts", "words", "--per-word", "3", "1", "1", *voices]) == 0
    assert main(["prepare-tts-mix", "pool", "--hours", "0.01", "--seed", "4", *voices]) == 0
    assert main(["prepare-tts-mix", "pool"]) == 0
    assert built[0] == (kws_tts.WordSetSettings(per_word=(3, 1, 1), engines=("festival",),
                                                festival_fraction=0.3), 2)
    assert built[1] == (speech_pool.PoolSettings(num_utterances=8, seed=4, engines=("festival",),
                                                 festival_fraction=0.3), 2)
    assert built[2][0] == speech_pool.PoolSettings()
    out = capsys.readouterr().out
    assert "word set ready" in out and out.count("speech pool ready") == 2


def test_settings_come_back_from_their_key():
    settings = kws_tts.WordSetSettings(per_word=(4, 2, 3), seed=5, engines=("espeak-ng",),
                                       festival_fraction=0.3, warp=0.05, words=("yes", "no"))
    assert kws_tts.WordSetSettings.from_key(settings.key(), "k.json") == settings
    with pytest.raises(ConfigError, match=r"^k.json: a word set of version 0"):
        kws_tts.WordSetSettings.from_key({**settings.key(), "version": 0}, "k.json")
    with pytest.raises(ConfigError, match=r"^k.json: not the settings of a word set"):
        kws_tts.WordSetSettings.from_key({**settings.key(), "colour": "red"}, "k.json")
    with pytest.raises(ConfigError, match=r"^k.json: a word set of version None"):
        kws_tts.WordSetSettings.from_key([1, 2], "k.json")


@needs_espeak
def test_breakdown_names_the_voice_of_every_clip(tmp_path, capsys):
    root = kws_tts.build(tmp_path / "kws", TINY, workers=1, progress=False)
    takes = kws_tts.clip_voices(root)
    tested = (root / "testing_list.txt").read_text().split()
    assert tested and all(takes[name].split == "test" for name in tested)
    assert all((root / name).exists() for name in tested)
    # an evaluation that gets the first test clip wrong and the others right
    rows = []
    for i, name in enumerate(tested):
        label = name.split("/")[0]
        wrong = next(word for word in TINY.words if word != label)
        rows.append({"id": name[:-4], "label": label, "prediction": wrong if i == 0 else label,
                     "correct": int(i != 0)})
    csv_path = tmp_path / "rows.csv"
    with open(csv_path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    breakdown = recipe_scripts.load("kws_tts", "breakdown")
    assert breakdown.main([str(csv_path), "--root", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    accuracy = (len(rows) - 1) / len(rows)
    assert out[1].split() == ["all", str(len(rows)), f"{accuracy:.3f}"]
    language = takes[tested[0]].voice.language
    line = next(line for line in out if line.split()[:2] == ["espeak-ng", language])
    same = [n for n in tested if takes[n].voice.language == language]
    assert line.split()[2:] == [str(len(same)), f"{(len(same) - 1) / len(same):.3f}"]
    assert out[-1].strip() == f"{rows[0]['label']} -> {rows[0]['prediction']}: 1"

    # a clip the set does not hold, or a set planned with other voices: one line, exit 1
    rows[0]["id"] = "yes/00000000_nohash_9"
    with open(csv_path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert breakdown.main([str(csv_path), "--root", str(root)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "yes/00000000_nohash_9: no such clip" in err[0]
    (root / "testing_list.txt").write_text("yes/00000000_nohash_9.wav\n")
    with pytest.raises(ConfigError, match="other synthesizer voices"):
        kws_tts.clip_voices(root)
    (root / "kws_tts.json").write_text("{not json")
    with pytest.raises(ConfigError, match="kws_tts.json: not valid JSON"):
        kws_tts.clip_voices(root)
