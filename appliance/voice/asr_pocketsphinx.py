"""Streaming menu-biased recognition with pocketsphinx: the one module importing pocketsphinx.

Fast (a few ms per 20 ms frame on a Pi-class CPU) and streaming, but far less accurate than
Whisper: it gives partial text while the caller speaks and a low-resource fallback, never
the final word when Whisper is available. Accuracy comes from a trigram LM built from the
tenant's menu (template sentences over the catalogue's words, never from test sentences),
cached under a hash of its text. The bundled en-us acoustic model is 16 kHz, so phone
audio is resampled with soxr on the way in.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import soxr
from pocketsphinx import Config, Decoder, get_model_path, set_loglevel
from pocketsphinx.lm import ArpaBoLM

from appliance.voice.asr_whisper import Transcript
from blueprints.menu import Menu, MenuItem

# Cepstral means of G.711 speech resampled to 16 kHz (measured over Piper and flite callers
# saying PIZZA utterances outside the benchmark's range). The acoustic model's default start
# values are for wideband audio and garble a process's first utterance on a phone line.
PHONE_CMN_INIT = "48.76,31.46,-30.66,45.38,-18.91,0.74,13.16,-25.82,19.16,-10.78,3.57,12.28,-11.79"
# Generic ordering English (no menu content): how callers open, refuse and close.
_OPENERS = ["", "i'd like", "i would like", "i'd like to order", "i want", "i want to order",
            "i need", "i need to order", "can i get", "can i have", "could i get", "i'll have",
            "i'll take", "give me", "get me", "let me get", "let me have", "and", "also", "plus"]
_CLOSERS = ["please", "that's it", "that's all", "thank you", "thanks", "yes", "no",
            "yes please", "no thanks", "that's everything", "nothing else"]
_NEGATIONS = ["no", "without", "hold the", "but no", "and no", "avoid", "not"]
_QUANTITIES = ["a", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
               "ten", "a couple of"]


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


def _rot(seq: list[str], i: int) -> str:
    return seq[i % len(seq)] if seq else ""


def _item_sentences(menu: Menu, n: int, item: MenuItem) -> list[str]:
    """Sentences naming one item: quantities, sizes, styles, toppings after and before it."""
    names = [item.name, *item.synonyms]
    sizes = [p for s in item.sizes for p in menu.size(s).phrases()] or [""]
    styles = [p for s in item.styles for p in menu.styles[s].phrases()]
    opts = [p for o in item.options for p in menu.options[o].phrases()]
    out: list[str] = []
    for i, q in enumerate(_QUANTITIES):
        noun = _rot(names, i) if q in ("a", "one") else item.plural
        out.append(f"{_rot(_OPENERS, n + i)} {q} {_rot(sizes, i)} {noun} {_rot(_CLOSERS, i)}")
    for j, size in enumerate(sizes):
        out.append(f"{_rot(_OPENERS, n + j)} a {size} {_rot(names, j)}")
    for j, style in enumerate(styles):
        out.append(f"a {_rot(sizes, j)} {style} {item.name} {_rot(_CLOSERS, j)}")
        out.append(f"{_rot(_QUANTITIES, j)} {_rot(sizes, j + 1)} {item.plural} {style}")
    for j, opt in enumerate(opts):
        o2, o3 = _rot(opts, j * 7 + 3), _rot(opts, j * 11 + 5)
        q, size = _rot(_QUANTITIES, j), _rot(sizes, j)
        noun = item.name if q in ("a", "one") else item.plural
        out.append(f"{_rot(_OPENERS, j)} {q} {size} {noun} with {opt} and {o2}")
        out.append(f"{_rot(_OPENERS, j + 5)} a {size} {opt} and {o2} {item.name}")
        out.append(f"{q} {noun} with {opt} {o2} and {o3} {_rot(_NEGATIONS, j)} {_rot(opts, j + 1)}")
        out.append(f"{_rot(_NEGATIONS, j)} {opt} {_rot(_CLOSERS, j)}")
        out.append(f"extra {opt} and light {o2}")
    for c in item.containers:
        out += [f"{q} {p} of {item.name}" for q in ("a", "two") for p in menu.containers[c].phrases()]
    for v in item.volumes:
        out += [f"a {p} {item.name}" for p in menu.volumes[v].phrases()]
    return out


def menu_sentences(menu: Menu) -> list[str]:
    """Template order sentences over the menu's own words: what a caller of this shop says."""
    out: list[str] = []
    for n, item in enumerate(menu.items):
        out += _item_sentences(menu, n, item)
    out += [f"with {p}" for o in menu.options.values() for p in o.phrases()] + _CLOSERS
    return [s for s in (_words(x) for x in out) if s]


def _derived(word: str, known: dict[str, list[str]]) -> list[str]:
    """Pronunciations of a word the dictionary lacks, built from words it has: a plural
    ('sprites' = sprite + S) or a compound ('sourdough' = sour + dough)."""
    for stem, ends in ((word[:-1], ("S", "Z")), (word[:-2], ("IH Z",))):
        if word.endswith("s") and stem in known:
            last = known[stem][0].split()[-1]
            end = "S" if last in ("P", "T", "K", "F", "TH") else ends[-1]
            return [f"{p} {end}" for p in known[stem][:1]]
    for cut in range(3, len(word) - 2):
        head, tail = word[:cut], word[cut:]
        if head in known and tail in known:
            return [f"{known[head][0]} {known[tail][0]}"]
    return []


def _pronunciations(words: set[str], dict_path: Path) -> tuple[list[str], set[str]]:
    """Dictionary lines for `words` (with alternates, derived where missing) and the words
    that stay unpronounceable."""
    known: dict[str, list[str]] = {}
    lines: list[str] = []
    with dict_path.open(encoding="utf-8") as fh:
        for line in fh:
            head, _, phones = line.rstrip("\n").partition(" ")
            base = head.split("(", 1)[0]
            known.setdefault(base, []).append(phones.strip())
            if base in words:
                lines.append(f"{head} {phones.strip()}")
    missing = set()
    for w in sorted(words - known.keys()):
        derived = _derived(w, known)
        lines += [f"{w if not i else f'{w}({i + 1})'} {p}" for i, p in enumerate(derived)]
        if not derived:
            missing.add(w)
    return lines, missing


@dataclass(frozen=True)
class MenuLanguageModel:
    """A built LM and its dictionary on disk, and the menu words it could not pronounce."""

    lm_path: Path
    dict_path: Path
    unknown_words: frozenset[str]


def build_menu_lm(menu: Menu, cache_dir: Path) -> MenuLanguageModel:
    """The menu's trigram LM (ArpaBoLM) and a dictionary cut to its words, cached by hash.

    Words the CMU dictionary lacks are left out of the corpus (pocketsphinx cannot say
    them); they are reported so the tenant's catalogue can add a common synonym.
    """
    sentences = menu_sentences(menu)
    cmu = Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"
    vocab = {w for s in sentences for w in s.split()}
    lines, unknown = _pronunciations(vocab, cmu)
    kept = [s for s in sentences if not set(s.split()) & unknown]
    text = "\n".join(kept) + "\n"
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    out = cache_dir / f"menu-{key}"
    lm_path, dict_path = out / "menu.lm", out / "menu.dict"
    if not (lm_path.is_file() and dict_path.is_file()):
        out.mkdir(parents=True, exist_ok=True)
        model = ArpaBoLM(text=text, add_start=True)
        model.compute()
        tmp = lm_path.with_name("menu.lm.tmp")
        if not model.write_file(str(tmp)):
            raise OSError(f"could not write the menu LM to {tmp}")
        dict_tmp = dict_path.with_name("menu.dict.tmp")
        dict_tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(dict_tmp, dict_path)
        os.replace(tmp, lm_path)
    return MenuLanguageModel(lm_path, dict_path, frozenset(unknown))


class AsrStream(Protocol):
    """A streaming recogniser for one utterance (what `stream()` of a streaming engine gives)."""

    def feed(self, frame_pcm8k: np.ndarray) -> str | None: ...

    def finish(self) -> Transcript: ...


class PocketsphinxStream:
    """One utterance: feed 8 kHz frames, get partial text when it changes, then `finish`."""

    def __init__(self, decoder: Decoder) -> None:
        self._decoder = decoder
        self._resampler = soxr.ResampleStream(8000, 16000, 1, dtype="int16")
        self._partial = ""
        self._samples = 0
        decoder.start_utt()

    def feed(self, frame_pcm8k: np.ndarray) -> str | None:
        """Decode one frame; the new partial hypothesis, or None if unchanged."""
        self._samples += len(frame_pcm8k)
        up = self._resampler.resample_chunk(frame_pcm8k.astype(np.int16))
        if len(up):
            self._decoder.process_raw(up.tobytes(), False, False)
        hyp = self._decoder.hyp()
        text = hyp.hypstr if hyp is not None else ""
        if text != self._partial:
            self._partial = text
            return text
        return None

    def finish(self) -> Transcript:
        """End the utterance; the final hypothesis, confidence = mean word posterior."""
        tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        if len(tail):
            self._decoder.process_raw(tail.tobytes(), False, False)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        text = hyp.hypstr if hyp is not None else ""
        words = [seg.prob for seg in self._decoder.seg() if seg.word[:1] not in ("<", "[")]
        conf = min(1.0, sum(words) / len(words)) if words and text else 0.0
        return Transcript(text, conf, self._samples // 8)


class PocketsphinxAsr:
    """Menu-biased pocketsphinx; one decoder, so one stream at a time per instance."""

    def __init__(self, menu: Menu, cache_dir: Path) -> None:
        self.menu = menu
        self.cache_dir = cache_dir
        self._decoder: Decoder | None = None
        self.lm: MenuLanguageModel | None = None

    def load(self) -> None:
        """Build (or reuse) the menu LM and start the decoder."""
        if self._decoder is not None:
            return
        self.lm = build_menu_lm(self.menu, self.cache_dir)
        set_loglevel("FATAL")
        config = Config(hmm=os.path.join(get_model_path(), "en-us", "en-us"),
                        lm=str(self.lm.lm_path), dict=str(self.lm.dict_path),
                        samprate=16000, bestpath=True, cmninit=PHONE_CMN_INIT)
        self._decoder = Decoder(config)

    def stream(self) -> AsrStream:
        """A streaming recogniser for one utterance."""
        self.load()
        assert self._decoder is not None
        return PocketsphinxStream(self._decoder)

    def transcribe(self, pcm8k: np.ndarray, prompt: str = "") -> Transcript:
        """Whole-utterance decode (the low-resource fallback); `prompt` is unused: the LM is
        already the menu."""
        s = self.stream()
        for i in range(0, len(pcm8k), 160):
            s.feed(pcm8k[i:i + 160])
        return s.finish()
