"""Offline speech synthesizers as data sources: espeak-ng and festival voices, split by voice.

A :class:`Voice` is one synthesizer voice: an espeak-ng language + variant (``cs+klatt3``) or a
festival speaker (``czech_dita``). :func:`installed_voices` lists those this machine has,
:func:`split_voices` assigns them to train / valid / test so that **no language and no variant
(or festival speaker) of a held-out voice is ever heard in training**, :func:`synthesize` speaks
a text with one voice and prosody at any sample rate, and :func:`sentence` makes varied text.

Why both axes: an espeak-ng variant (``m3``, ``klatt3``, ``Andy``) is a set of voice-quality
settings applied to any language, and a language is a phoneme set and prosody applied with any
variant. A test voice ``de+m3`` next to a training voice ``en-us+m3`` shares its timbre; one
next to ``de+f2`` shares its language. So a voice belongs to split ``s`` only when its language
*and* its variant are both assigned to ``s`` (voices whose two halves disagree are not used).
Festival speakers are their own variant; the three NSK voices (Hindi, Marathi, Telugu) are one
speaker, so their speaker key is ``nsk``.

The programs are Debian packages: ``apt-get install -y espeak-ng festival festvox-kallpc16k ...``
(:data:`FESTIVAL_VOICES` names each voice's package). A missing program is a one-line
:class:`~audionets.errors.ConfigError` naming the package to install.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from audionets import audio
from audionets.errors import ConfigError

SPLITS = ("train", "valid", "test")
ENGINES = ("espeak-ng", "festival")
#: Fraction of languages / variants assigned to each split (by a fixed hash of the name).
SPLIT_FRACTIONS = {"train": 0.8, "valid": 0.1, "test": 0.1}
#: Languages whose split is fixed rather than hashed: English (every accent) and the other
#: languages of festival's training speakers stay in training; Czech (four festival speakers)
#: is the held-out test language and Finnish (two) the validation one.
PINNED_LANGUAGES = {
    "en": "train", "it": "train", "hi": "train", "mr": "train", "te": "train", "ru": "train",
    "ca": "train", "cs": "test", "fi": "valid",
}
#: espeak-ng's plain voice of each language counts as the variant "default", kept in training.
PINNED_VARIANTS = {"default": "train"}
#: espeak-ng variants left out: "fast" is a speed test voice, not a speaker.
EXCLUDED_VARIANTS = {"fast"}

#: festival voice -> (language, speaker key, Debian package).
FESTIVAL_VOICES = {
    "kal_diphone": ("en", "kal", "festvox-kallpc16k"),
    "ked_diphone": ("en", "ked", "festvox-kdlpc16k"),
    "cmu_us_slt_arctic_hts": ("en", "slt", "festvox-us-slt-hts"),
    "lp_diphone": ("it", "lp", "festvox-italp16k"),
    "pc_diphone": ("it", "pc", "festvox-itapc16k"),
    "hindi_NSK_diphone": ("hi", "nsk", "festvox-hi-nsk"),
    "marathi_NSK_diphone": ("mr", "nsk", "festvox-mr-nsk"),
    "telugu_NSK_diphone": ("te", "nsk", "festvox-te-nsk"),
    "msu_ru_nsh_clunits": ("ru", "nsh", "festvox-ru"),
    "upc_ca_ona_hts": ("ca", "ona", "festvox-ca-ona-hts"),
    "czech_dita": ("cs", "dita", "festvox-czech-dita"),
    "czech_krb": ("cs", "krb", "festvox-czech-krb"),
    "czech_machac": ("cs", "machac", "festvox-czech-machac"),
    "czech_ph": ("cs", "ph", "festvox-czech-ph"),
    "suo_fi_lj_diphone": ("fi", "lj", "festvox-suopuhe-lj"),
    "hy_fi_mv_diphone": ("fi", "mv", "festvox-suopuhe-mv"),
}
FESTIVAL_VOICE_DIRS = (Path("/usr/share/festival/voices"),)
#: Voices that crash (festival exits with a segmentation fault) on many Latin-script words:
#: they speak numbers only, which their front-ends read in their own language.
NUMBERS_ONLY = {"hindi_NSK_diphone", "marathi_NSK_diphone", "telugu_NSK_diphone"}


@dataclass(frozen=True)
class Voice:
    """One synthesizer voice.

    Attributes:
        engine: ``"espeak-ng"`` or ``"festival"``.
        name: what the engine calls it: ``"cs+klatt3"`` (espeak-ng ``-v``) or ``"czech_dita"``.
        language: base language code (``"en"`` for every English accent).
        variant: espeak-ng variant (``"klatt3"``, ``"default"``) or festival speaker key.
    """

    engine: str
    name: str
    language: str
    variant: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Prosody:
    """How one utterance is spoken.

    Attributes:
        pitch: espeak-ng ``-p`` (0-99, 50 is the voice's own); festival ignores it.
        pitch_range: percent of the voice's intonation range (espeak-ng SSML ``range``).
        rate: speaking rate relative to the voice's own (1.0 = normal; 1.2 = 20 % faster).
        word_gap: extra pause between words in 10 ms units (espeak-ng ``-g``).
        warp: resampling factor applied after synthesis: the audio is treated as recorded at
            ``warp`` times its rate, so 1.1 raises pitch and formants by 10 % and shortens it.
    """

    pitch: int = 50
    pitch_range: int = 100
    rate: float = 1.0
    word_gap: int = 0
    warp: float = 1.0


def _require_program(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise ConfigError(f"{program} is not installed: apt-get install -y {package}")
    return path


def base_language(code: str) -> str:
    """``"en-gb-scotland" -> "en"``, ``"cmn-latn-pinyin" -> "cmn"``."""
    return code.split("-")[0].lower()


def espeak_voices() -> list[Voice]:
    """Every language x variant voice of the installed espeak-ng (without EXCLUDED_VARIANTS)."""
    binary = _require_program("espeak-ng", "espeak-ng")
    languages = _espeak_table(binary, "--voices", column=1)
    variants = [v.split("/", 1)[1] for v in _espeak_table(binary, "--voices=variant", column=4)]
    variants = ["default"] + sorted({v for v in variants if v not in EXCLUDED_VARIANTS})
    voices = []
    for language in sorted(set(languages)):
        for variant in variants:
            name = language if variant == "default" else f"{language}+{variant}"
            voices.append(Voice("espeak-ng", name, base_language(language), variant))
    return voices


def _espeak_table(binary: str, flag: str, column: int) -> list[str]:
    out = subprocess.run([binary, flag], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in out.splitlines()[1:]]
    return [row[column] for row in rows if len(row) > column]


def festival_voices() -> list[Voice]:
    """The :data:`FESTIVAL_VOICES` installed here (none when festival itself is missing)."""
    if shutil.which("text2wave") is None:
        return []
    have = {p.name for d in FESTIVAL_VOICE_DIRS if d.is_dir() for p in d.glob("*/*")}
    return [Voice("festival", name, language, speaker)
            for name, (language, speaker, _) in FESTIVAL_VOICES.items() if name in have]


def installed_voices(engines: tuple[str, ...] | list[str] = ENGINES) -> list[Voice]:
    """The voices of ``engines`` installed on this machine.

    Raises ConfigError naming the Debian package when an engine is asked for but missing.
    """
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise ConfigError(f"data.engines: unknown {unknown}; choose from {', '.join(ENGINES)}")
    voices: list[Voice] = []
    if "espeak-ng" in engines:
        voices += espeak_voices()
    if "festival" in engines:
        _require_program("text2wave", "festival")
        found = festival_voices()
        if not found:
            packages = " ".join(p for _, _, p in FESTIVAL_VOICES.values())
            raise ConfigError(f"festival has none of its voices installed: apt-get install -y "
                              f"{packages}")
        voices += found
    return voices


def _hash_split(key: str, fractions: dict[str, float]) -> str:
    """A split for ``key`` from a fixed hash: the same on every machine and Python run."""
    u = int(hashlib.sha1(key.encode()).hexdigest()[:12], 16) / 16**12
    edge = 0.0
    for split in ("valid", "test"):
        if edge <= u < edge + fractions[split]:
            return split
        edge += fractions[split]
    return "train"


def language_split(language: str, fractions: dict[str, float] = SPLIT_FRACTIONS) -> str:
    return PINNED_LANGUAGES.get(language) or _hash_split("language:" + language, fractions)


def variant_split(voice: Voice, fractions: dict[str, float] = SPLIT_FRACTIONS) -> str:
    """The split of a voice's variant; a festival speaker goes with its language's split."""
    if voice.engine == "festival":
        return language_split(voice.language, fractions)
    return PINNED_VARIANTS.get(voice.variant) or _hash_split("variant:" + voice.variant, fractions)


def split_of(voice: Voice, fractions: dict[str, float] = SPLIT_FRACTIONS) -> str | None:
    """``voice``'s split, or None when its language and its variant are in different splits."""
    split = language_split(voice.language, fractions)
    return split if variant_split(voice, fractions) == split else None


def split_voices(voices: list[Voice], fractions: dict[str, float] = SPLIT_FRACTIONS,
                 ) -> dict[str, list[Voice]]:
    """Disjoint train / valid / test voice lists (see the module docstring for the rule)."""
    out: dict[str, list[Voice]] = {s: [] for s in SPLITS}
    for voice in voices:
        split = split_of(voice, fractions)
        if split is not None:
            out[split].append(voice)
    return out


# --- text --------------------------------------------------------------------------------------

_ENGLISH = """
the a this that every some no one two three my your our their his her
house water river mountain city street market garden window table chair paper letter morning
evening night summer winter spring autumn rain snow wind sun moon star cloud road field
teacher doctor student children village island forest bridge station train bicycle engine
machine computer network signal picture kitchen office letter pocket basket ladder hammer
mirror blanket candle bottle jacket button pencil camera ticket castle harbour valley desert
ocean meadow orchard tunnel tower library museum theatre airport factory hospital prison
quick slow bright dark happy quiet loud early late small large old new warm cold heavy light
gentle simple careful strong yellow purple silver golden green blue red black white orange
broken empty famous hidden narrow pleasant strange sudden tired wooden
walk run read write speak listen open close bring carry find keep leave meet move play show
start stop think turn wait watch work travel climb paint build forget remember follow answer
explain borrow promise arrive decide wonder whisper shout laugh cry carry throw catch
always never often today tomorrow yesterday here there again together before after slowly
quickly suddenly perhaps almost already finally nearly really because although while until
""".split()
_ONSETS = ("", "b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
           "j", "bl", "br", "dr", "fr", "gr", "kr", "pl", "pr", "st", "tr", "sk", "sl", "sp",
           "ch", "sh", "th", "ts", "mb", "nd")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou", "ei", "ia", "ua", "y")
_CODAS = ("", "", "", "n", "m", "r", "s", "l", "t", "k", "ng", "st", "rd")


def _pseudo_word(rng: random.Random) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                   for _ in range(rng.randint(1, 3))) or "a"


def _number(rng: random.Random) -> str:
    return str(rng.randint(0, 10 ** rng.randint(1, 4)))


def sentence(rng: random.Random, language: str = "en", min_words: int = 3,
             max_words: int = 9, numbers_only: bool = False) -> str:
    """A random sentence: English words, pronounceable pseudo-words and numbers.

    English voices speak mostly English words; other languages mostly pseudo-words (read with
    their own letter-to-sound rules) and numbers (which every espeak-ng and festival language
    speaks in its own words). Commas and the final ``.``/``?``/``!`` vary the prosody.
    """
    english = language == "en"
    weights = (0.0, 0.0, 1.0) if numbers_only else (0.75, 0.1, 0.15) if english else (0.2, 0.6, 0.2)
    words = []
    for _ in range(rng.randint(min_words, max_words)):
        kind = rng.choices(("english", "pseudo", "number"), weights)[0]
        word = (rng.choice(_ENGLISH) if kind == "english"
                else _pseudo_word(rng) if kind == "pseudo" else _number(rng))
        if words and rng.random() < 0.08:
            words[-1] += ","
        words.append(word)
    return " ".join(words) + rng.choice((".", ".", ".", "?", "!"))


def voice_sentence(rng: random.Random, voice: Voice) -> str:
    """A :func:`sentence` that ``voice`` can speak (numbers only for :data:`NUMBERS_ONLY`)."""
    return sentence(rng, voice.language, numbers_only=voice.name in NUMBERS_ONLY)


def random_prosody(rng: random.Random, base_pitch: int = 50, warp_range: float = 0.1) -> Prosody:
    """Per-utterance prosody around a voice's base pitch: pitch, range, rate, word gap, warp."""
    return Prosody(
        pitch=min(99, max(0, base_pitch + rng.randint(-10, 10))),
        pitch_range=rng.randint(40, 180),
        rate=round(rng.uniform(0.8, 1.25), 3),
        word_gap=rng.choice((0, 0, 0, 1, 2, 4)),
        warp=round(rng.uniform(1 - warp_range, 1 + warp_range), 3),
    )


# --- synthesis ---------------------------------------------------------------------------------

#: espeak-ng's words per minute at rate 1.0.
ESPEAK_WPM = 165


def synthesize(voice: Voice, text: str, sample_rate: int, prosody: Prosody = Prosody(),
               ) -> torch.Tensor:
    """Speak ``text`` with ``voice``: a mono float32 waveform ``[T]`` at ``sample_rate``."""
    return synthesize_many(voice, [(text, prosody)], sample_rate)[0][0]


def synthesize_many(voice: Voice, items: list[tuple[str, Prosody]], sample_rate: int,
                    ) -> list[tuple[torch.Tensor, str]]:
    """Speak several ``(text, prosody)`` items with one voice (festival starts only once).

    Returns ``(waveform [T], text spoken)`` per item: the text is the item's own, except where
    the synthesizer fails on it (festival's Scheme errors, a rare espeak-ng segmentation fault
    on some voice and letter sequence): then it speaks :func:`numbers_instead` of it.
    """
    with tempfile.TemporaryDirectory(prefix="audionets-tts-") as tmp:
        raws = [Path(tmp) / f"{i}.wav" for i in range(len(items))]
        if voice.engine == "espeak-ng":
            texts = [_espeak_with_fallback(voice, text, prosody, raw)
                     for (text, prosody), raw in zip(items, raws)]
        elif voice.engine == "festival":
            texts = _festival_with_fallback(voice, items, raws)
        else:
            raise ConfigError(f"unknown synthesizer engine {voice.engine!r}")
        out = []
        for (_, prosody), raw, text in zip(items, raws, texts):
            wav, rate = audio.load(raw, mono=True)
            out.append((_warp(wav[0], rate, sample_rate, prosody.warp), text))
        return out


def numbers_instead(text: str) -> str:
    """As many numbers as ``text`` has words, fixed by the text (a festival fallback)."""
    rng = random.Random(int(hashlib.sha1(text.encode()).hexdigest()[:12], 16))
    return " ".join(_number(rng) for _ in text.split()) + "."


def _espeak_with_fallback(voice: Voice, text: str, prosody: Prosody, out: Path) -> str:
    try:
        _espeak(voice, text, prosody, out)
        return text
    except ConfigError:  # e.g. kl+edward crashes on "864 ast sheing slanmul mbe?"
        _espeak(voice, numbers_instead(text), prosody, out)
        return numbers_instead(text)


def _festival_with_fallback(voice: Voice, items: list[tuple[str, Prosody]], outs: list[Path],
                            ) -> list[str]:
    """Festival on the batch; items it failed on again alone, then as numbers.

    Festival's diphone voices stop with a Scheme error (or crash) on some letter sequences of
    the pseudo-words; one such item must not lose the batch or stop a pool build.
    """
    texts = [text for text, _ in items]
    try:
        _festival(voice, items, outs)
        return texts
    except ConfigError:
        pass
    for index, ((text, prosody), out) in enumerate(zip(items, outs)):
        if out.exists():
            continue
        try:
            _festival(voice, [(text, prosody)], [out])
        except ConfigError:
            texts[index] = numbers_instead(text)
            _festival(voice, [(texts[index], prosody)], [out])
    return texts


def _espeak(voice: Voice, text: str, prosody: Prosody, out: Path) -> None:
    binary = _require_program("espeak-ng", "espeak-ng")
    ssml = f'<speak><prosody range="{prosody.pitch_range}%">{_xml_escape(text)}</prosody></speak>'
    wpm = max(80, min(450, round(ESPEAK_WPM * prosody.rate)))
    command = [binary, "-m", "-v", voice.name, "-p", str(prosody.pitch), "-s", str(wpm),
               "-g", str(prosody.word_gap), "-w", str(out), ssml]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not out.exists():
        raise ConfigError(f"espeak-ng -v {voice.name} failed on {text!r} (exit "
                          f"{result.returncode}): {result.stderr.strip()[:200]}")


def _festival(voice: Voice, items: list[tuple[str, Prosody]], outs: list[Path]) -> None:
    """One festival process speaks every item (its start-up costs more than an utterance)."""
    _require_program("festival", "festival")
    lines = [f"(voice_{voice.name})"]
    for (text, prosody), out in zip(items, outs):
        # Duration_Stretch > 1 is slower speech: the inverse of a rate.
        lines.append(f"(Parameter.set 'Duration_Stretch {1.0 / prosody.rate:.3f})")
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{_scheme_escape(text)}")) '
                     f'"{out}" \'riff)')
    with tempfile.NamedTemporaryFile("w", suffix=".scm", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    try:
        result = subprocess.run(["festival", "-b", script.name], capture_output=True, text=True)
    finally:
        Path(script.name).unlink(missing_ok=True)
    missing = [i for i, o in enumerate(outs) if not o.exists()]
    if result.returncode != 0 or missing:
        package = FESTIVAL_VOICES.get(voice.name, (None, None, "festival"))[2]
        text = items[missing[0]][0] if missing else ""
        raise ConfigError(f"festival voice {voice.name} ({package}) failed on {text!r}: "
                          f"{(result.stderr or result.stdout).strip()[:200] or 'no output'}")


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _scheme_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _warp(wav: torch.Tensor, rate: int, sample_rate: int, warp: float) -> torch.Tensor:
    """Resample ``wav`` recorded at ``rate`` as if it had been recorded at ``rate * warp``.

    The claimed rate is rounded to a multiple of 50 Hz so that its ratio to ``sample_rate``
    stays a small fraction (torchaudio's windowed-sinc kernel grows with the reduced ratio).
    """
    claimed = max(50, int(round(rate * warp / 50.0)) * 50)
    return audio.resample(wav, claimed, sample_rate).contiguous()
