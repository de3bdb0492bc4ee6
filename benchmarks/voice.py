"""Speech accuracy and latency over a simulated phone line: caller TTS -> G.711 -> ASR.

`voxeron bench voice --n 40 --voices piper,espeak,flite --engines tiny,base,sphinx`
synthesises the first N PIZZA dev utterances with each caller voice, passes them through
mu-law encode/decode and transcribes them with each engine: Whisper tiny.en and base (with
and without the blueprint's menu prompt) and pocketsphinx with the PIZZA menu's trigram LM.
Per voice x engine x prompt it prints WER %, exact-utterance %, order exact % (the parse of
the transcript against the gold EXR tree, with the menu sound-alike repair and without it),
RTF and ASR latency p50/p99; then Piper's time to first sentence over the agent's prompts.
`--prompt` / `--no-prompt` run only that Whisper variant (default: both); `--transcripts F`
writes every transcript as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from appliance.dialog.order_parser import OrderParser
from appliance.voice.asr_pocketsphinx import PocketsphinxAsr
from appliance.voice.asr_whisper import Transcript, WhisperAsr
from appliance.voice.g711 import ulaw_decode, ulaw_encode
from appliance.voice.tts_piper import PiperTts
from benchmarks.exr import ExrError, read_exr, same_tree, to_exr
from benchmarks.nlu import DEFAULT_CATALOGS, percentile
from benchmarks.word_error import WerTally
from blueprints.catalog_import import pizza_menu
from blueprints.engine import compose_builtin
from blueprints.menu import Menu
from blueprints.model import Blueprint
from voxeron.caller_voices import caller_voice

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "pizza" / "PIZZA_dev.json"
VOICES = ("piper", "espeak", "flite")
ENGINES = {"tiny": "whisper-tiny.en", "base": "whisper-base", "sphinx": "pocketsphinx"}
CACHE = REPO / "var" / "bench" / "models"
RATE = 8000
# Values for the prompts' per-call placeholders, so TTS speaks realistic full sentences.
SAMPLE_VALUES = {
    "added": "two large pepperoni pizzas", "items": "two large pepperoni pizzas and a coke",
    "total": "twenty nine dollars fifty", "number": "forty two", "thing": "calzone",
    "max": "ten", "updated": "three medium ham pizzas", "removed": "the garlic bread",
}


@dataclass
class AsrRun:
    """One voice x prompt cell: accuracy tally plus decode timings."""

    tally: WerTally = field(default_factory=WerTally)
    decode_ms: list[float] = field(default_factory=list)
    audio_s: float = 0.0
    hyps: list[str] = field(default_factory=list)
    orders: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})

    @property
    def rtf(self) -> float:
        return sum(self.decode_ms) / 1000 / self.audio_s if self.audio_s else 0.0


def read_utterances(path: Path, n: int) -> list[str]:
    """The first `n` utterances ('src' or the split's '*.SRC' field) of a JSON-lines file."""
    return [src for src, _ in read_gold(path, n)]


def read_gold(path: Path, n: int) -> list[tuple[str, str | None]]:
    """The first `n` (utterance, gold EXR or None) pairs of a JSON-lines file."""
    out: list[tuple[str, str | None]] = []
    with path.open() as fh:
        for line in fh:
            if len(out) >= n:
                break
            if line.strip():
                row = json.loads(line)
                src = row.get("src") or next(v for k, v in row.items() if k.endswith(".SRC"))
                gold = row.get("exr") or next((v for k, v in row.items() if k.endswith(".EXR")),
                                              None)
                out.append((str(src), None if gold is None else str(gold)))
    return out


def order_right(parser: OrderParser, menu: Menu, text: str, gold: str | None) -> bool:
    """Whether the transcript's parse is the gold order tree (False without a gold tree)."""
    if gold is None:
        return False
    try:
        return same_tree(read_exr(to_exr(parser.parse(text), menu)), read_exr(gold))
    except ExrError:
        return False


def phone_line(pcm8k: np.ndarray) -> np.ndarray:
    """What the box hears: 8 kHz audio after G.711 mu-law encode and decode."""
    return ulaw_decode(ulaw_encode(pcm8k))


class Recognizer(Protocol):
    def transcribe(self, pcm8k: np.ndarray, prompt: str = "") -> Transcript: ...


@dataclass
class OrderJudge:
    """Scores transcripts as orders on the PIZZA menu, with and without sound-alike repair."""

    menu: Menu
    parsers: dict[bool, OrderParser] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.parsers = {fuzzy: OrderParser(self.menu, sound_alike=fuzzy) for fuzzy in (True, False)}

    def score(self, run: AsrRun, text: str, gold: str | None) -> None:
        for fuzzy, parser in self.parsers.items():
            run.orders[fuzzy] += order_right(parser, self.menu, text, gold)


def run_asr(asr: Recognizer, audio: list[np.ndarray], gold: list[tuple[str, str | None]],
            prompt: str, judge: OrderJudge) -> AsrRun:
    run = AsrRun()
    for pcm, (ref, exr) in zip(audio, gold, strict=True):
        t0 = time.perf_counter()
        text = asr.transcribe(pcm, prompt=prompt).text
        run.decode_ms.append((time.perf_counter() - t0) * 1000)
        run.audio_s += len(pcm) / RATE
        run.tally.add(ref, text)
        run.hyps.append(text)
        judge.score(run, text, exr)
    return run


def agent_prompts(bp: Blueprint) -> list[str]:
    """Every prompt of the blueprint, filled with sample values."""
    return [bp.prompt(key, **SAMPLE_VALUES) for key in bp.prompts]


def first_sentence_ms(tts: PiperTts, texts: list[str], rounds: int) -> list[float]:
    """Time from asking Piper for `text` to its first sentence of audio, per text and round."""
    out: list[float] = []
    for _ in range(rounds):
        for text in texts:
            t0 = time.perf_counter()
            next(tts.sentences(text))  # the dropped generator is closed: no further sentences
            out.append((time.perf_counter() - t0) * 1000)
    return out


def load_engines(names: list[str], menu: Menu) -> dict[str, Recognizer]:
    """Each engine loaded and warmed up (not measured)."""
    out: dict[str, Recognizer] = {}
    for name in names:
        if name == "sphinx":
            asr: Recognizer = PocketsphinxAsr(menu, CACHE / "pocketsphinx")
        else:
            asr = WhisperAsr.from_catalogue(ENGINES[name], CACHE)
        asr.transcribe(np.zeros(RATE, dtype=np.int16))
        out[name] = asr
    return out


def main(argv: list[str]) -> int:
    """Run the benchmark and print the table; returns 0."""
    ap = argparse.ArgumentParser(prog="voxeron bench voice")
    ap.add_argument("--n", type=int, default=40, help="first N dev utterances")
    ap.add_argument("--voices", default=",".join(VOICES), help="comma list of caller voices")
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma list: tiny, base, sphinx")
    ap.add_argument("--prompt", action=argparse.BooleanOptionalAction, default=None,
                    help="only with (--prompt) or without (--no-prompt) the menu prompt")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="PIZZA JSON-lines file")
    ap.add_argument("--tts-rounds", type=int, default=3, help="passes over the agent prompts")
    ap.add_argument("--transcripts", type=Path, help="write every transcript here (JSON lines)")
    args = ap.parse_args(argv)
    voices = [v.strip() for v in args.voices.split(",") if v.strip()]
    if unknown := sorted(set(voices) - set(VOICES)):
        ap.error(f"unknown voices {unknown}; known: {', '.join(VOICES)}")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if unknown := sorted(set(engines) - set(ENGINES)):
        ap.error(f"unknown engines {unknown}; known: {', '.join(ENGINES)}")
    prompts = [False, True] if args.prompt is None else [args.prompt]

    gold = read_gold(args.data.resolve(), args.n)
    refs = [src for src, _ in gold]
    bp = compose_builtin("restaurant_orders", "demo_pizza")
    menu = pizza_menu(DEFAULT_CATALOGS.resolve())
    judge = OrderJudge(menu)
    asrs = load_engines(engines, menu)
    t_start = time.monotonic()
    rows: list[tuple[str, str, bool, AsrRun]] = []
    for name in voices:
        voice = caller_voice(name)
        audio = [phone_line(voice.synthesize(text)) for text in refs]
        for engine, asr in asrs.items():
            for use_prompt in ([False] if engine == "sphinx" else prompts):
                prompt = bp.asr_hints if use_prompt else ""
                rows.append((name, engine, use_prompt, run_asr(asr, audio, gold, prompt, judge)))
    if args.transcripts:
        with args.transcripts.open("w") as fh:
            for name, engine, use_prompt, run in rows:
                for ref, hyp in zip(refs, run.hyps, strict=True):
                    fh.write(json.dumps({"voice": name, "engine": engine, "prompt": use_prompt,
                                         "ref": ref, "hyp": hyp}) + "\n")

    tts = PiperTts()
    tts.load()
    texts = agent_prompts(bp)
    next(tts.sentences(texts[0]))  # warm-up, not measured
    tts_ms = first_sentence_ms(tts, texts, args.tts_rounds)

    print(f"voice: {len(refs)} utterances from {args.data.name}, G.711 mu-law 8 kHz, "
          f"wall {time.monotonic() - t_start:.0f}s; order % = parse of the transcript is the "
          f"gold tree, with / without sound-alike repair")
    print(f"{'voice':<8}{'engine':<8}{'prompt':<8}{'WER %':>7}{'exact %':>9}{'order %':>9}"
          f"{'no-fz %':>9}{'RTF':>7}{'p50 ms':>8}{'p99 ms':>8}")
    for name, engine, use_prompt, run in rows:
        n = max(run.tally.utterances, 1)
        label = "lm" if engine == "sphinx" else ("menu" if use_prompt else "none")
        print(f"{name:<8}{engine:<8}{label:<8}{run.tally.wer:>7.1f}"
              f"{run.tally.exact_rate:>9.1f}{100 * run.orders[True] / n:>9.1f}"
              f"{100 * run.orders[False] / n:>9.1f}{run.rtf:>7.3f}"
              f"{percentile(run.decode_ms, 50):>8.0f}{percentile(run.decode_ms, 99):>8.0f}")
    print(f"piper first sentence over {len(texts)} agent prompts x {args.tts_rounds}: "
          f"p50={percentile(tts_ms, 50):.0f} ms p99={percentile(tts_ms, 99):.0f} ms")
    return 0
