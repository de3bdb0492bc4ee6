"""Offline spoken-order accuracy: caller TTS -> (kitchen noise) -> G.711 -> ASR -> the box's parser.

`voxeron bench voice --offline-asr --limit 50 --voices flite-slt,espeak --engines tiny,base`
synthesises the first N PIZZA dev utterances with each caller voice exactly as the SIP
benchmark's caller does (trimmed, levelled to -20 dBFS, the kitchen noise bed at 15 dB SNR on
an evenly spread `--noise-share`, 200 ms pre-roll and 600 ms end silence as the endpointer
hands it over), passes them through mu-law encode/decode and transcribes them with each
engine and the menu prompt the box is given. Each transcript is parsed by the box's real
`OrderParser` on the PIZZA menu and compared with the gold EXR tree as `bench nlu` does
(unordered exact match). No SIP, no dialog: minutes, not the 45 of a 100-call run.

Per voice x engine it prints WER %, exact-utterance %, order exact % (with the menu
sound-alike repair and without), RTF and decode p50/p99; then per engine over all voices,
and the text ceiling (the parse of the reference text itself). Offline order exact compares
the parse before the box fills in default sizes, so it matches the call table's exact* %.
Synthesised lines are cached under var/bench/caller-audio (keyed by voice and text).
`--transcripts F` writes every transcript as JSON lines; `--tts-rounds N` (default 0) also
times Piper's first sentence over the agent's prompts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from appliance.dialog.order_parser import OrderParser
from appliance.voice.asr_pocketsphinx import PocketsphinxAsr
from appliance.voice.asr_prompt import menu_prompt
from appliance.voice.asr_whisper import DecodeOptions, Transcript, WhisperAsr
from appliance.voice.g711 import ulaw_decode, ulaw_encode
from appliance.voice.tts_piper import PiperTts
from benchmarks.caller_audio import NoiseBed, caller_line
from benchmarks.exr import ExrError, read_exr, same_tree, to_exr
from benchmarks.nlu import DEFAULT_CATALOGS, percentile
from benchmarks.word_error import WerTally
from blueprints.catalog_import import pizza_menu
from blueprints.engine import compose_builtin
from blueprints.menu import Menu
from blueprints.model import Blueprint
from voxeron.caller_voices import BENCH_VOICES, caller_voice

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "pizza" / "PIZZA_dev.json"
VOICES = (*BENCH_VOICES, "piper", "flite")
ENGINES = {"tiny": "whisper-tiny.en", "base": "whisper-base", "sphinx": "pocketsphinx"}
CACHE = REPO / "var" / "bench" / "models"
AUDIO_CACHE = REPO / "var" / "bench" / "caller-audio"
RATE = 8000
PRE_ROLL_S = 0.2  # appliance/voice/endpointing.py keeps 200 ms before speech starts
END_SILENCE_S = 0.6  # ... and closes an utterance after 600 ms of silence
NOISE_SNR_DB = 15.0
# Values for the prompts' per-call placeholders, so TTS speaks realistic full sentences.
SAMPLE_VALUES = {
    "added": "two large pepperoni pizzas", "items": "two large pepperoni pizzas and a coke",
    "total": "twenty nine dollars fifty", "number": "forty two", "thing": "calzone",
    "max": "ten", "updated": "three medium ham pizzas", "removed": "the garlic bread",
}


@dataclass
class AsrRun:
    """One voice x engine x prompt cell: accuracy tallies plus decode timings."""

    tally: WerTally = field(default_factory=WerTally)
    decode_ms: list[float] = field(default_factory=list)
    audio_s: float = 0.0
    hyps: list[str] = field(default_factory=list)
    right: list[bool] = field(default_factory=list)
    orders: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})

    @property
    def rtf(self) -> float:
        return sum(self.decode_ms) / 1000 / self.audio_s if self.audio_s else 0.0

    def merge(self, other: AsrRun) -> None:
        """Add another cell's figures (for the per-engine total over voices)."""
        for name in ("edits", "ref_words", "exact", "utterances"):
            setattr(self.tally, name, getattr(self.tally, name) + getattr(other.tally, name))
        self.decode_ms += other.decode_ms
        self.audio_s += other.audio_s
        self.hyps += other.hyps
        self.right += other.right
        for k in self.orders:
            self.orders[k] += other.orders[k]


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


def noisy_at(i: int, share: float) -> bool:
    """Whether utterance i is in a `share` spread evenly (0.3 -> 3 in every 10), as the calls."""
    return int((i + 1) * share) > int(i * share)


def endpointed(line: np.ndarray, noise: NoiseBed | None, seed: int) -> np.ndarray:
    """The utterance as the endpointer hands it to ASR: pre-roll, the line, end silence; the
    noise bed under all of it when the call is noisy."""
    pad = np.zeros(int(PRE_ROLL_S * RATE), dtype=np.int16)
    tail = np.zeros(int(END_SILENCE_S * RATE), dtype=np.int16)
    pcm = np.concatenate([pad, line, tail]).astype(np.int32)
    if noise is not None:
        bed = np.roll(noise.samples, seed * 4001)
        reps = -(-len(pcm) // len(bed))
        pcm += np.tile(bed, reps)[: len(pcm)]
    return np.clip(pcm, -32768, 32767).astype(np.int16)


def cached_line(voice: str, text: str, cache: Path = AUDIO_CACHE) -> np.ndarray:
    """The caller's line for `text` (trimmed, levelled), synthesised once per voice and text."""
    path = cache / voice / f"{hashlib.sha1(text.encode()).hexdigest()[:16]}.npy"
    if path.exists():
        return np.load(path)
    pcm = caller_line(np.asarray(caller_voice(voice).synthesize(text)))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, pcm)
    return pcm


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
            ok = order_right(parser, self.menu, text, gold)
            run.orders[fuzzy] += ok
            if fuzzy:
                run.right.append(ok)


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


def load_engines(names: list[str], menu: Menu, options: DecodeOptions) -> dict[str, Recognizer]:
    """Each engine loaded and warmed up (not measured)."""
    out: dict[str, Recognizer] = {}
    for name in names:
        if name == "sphinx":
            asr: Recognizer = PocketsphinxAsr(menu, CACHE / "pocketsphinx")
        else:
            asr = WhisperAsr.from_catalogue(ENGINES[name], CACHE, options=options)
        asr.transcribe(np.zeros(RATE, dtype=np.int16))
        out[name] = asr
    return out


def _row(voice: str, engine: str, label: str, run: AsrRun) -> str:
    n = max(run.tally.utterances, 1)
    return (f"{voice:<17}{engine:<7}{label:<7}{run.tally.utterances:>4}{run.tally.wer:>7.1f}"
            f"{run.tally.exact_rate:>8.1f}{100 * run.orders[True] / n:>8.1f}"
            f"{100 * run.orders[False] / n:>8.1f}{run.rtf:>7.3f}"
            f"{percentile(run.decode_ms, 50):>7.0f}{percentile(run.decode_ms, 99):>7.0f}")


def print_table(rows: list[tuple[str, str, bool, AsrRun]], text_right: int, n: int) -> None:
    """Per voice x engine, then per engine x prompt over all voices, then the text ceiling."""
    print(f"{'voice':<17}{'engine':<7}{'prompt':<7}{'n':>4}{'WER %':>7}{'utt %':>8}"
          f"{'exact%':>8}{'no-fz%':>8}{'RTF':>7}{'p50ms':>7}{'p99ms':>7}")
    totals: dict[tuple[str, bool], AsrRun] = {}
    for voice, engine, use_prompt, run in rows:
        label = "lm" if engine == "sphinx" else ("menu" if use_prompt else "none")
        print(_row(voice, engine, label, run))
        totals.setdefault((engine, use_prompt), AsrRun()).merge(run)
    for (engine, use_prompt), run in totals.items():
        label = "lm" if engine == "sphinx" else ("menu" if use_prompt else "none")
        print(_row("ALL voices", engine, label, run))
    print(f"text ceiling (parse of the reference text): {text_right}/{n} = "
          f"{100 * text_right / max(n, 1):.1f}%")


def main(argv: list[str]) -> int:
    """Run the benchmark and print the table; returns 0."""
    ap = argparse.ArgumentParser(prog="voxeron bench voice --offline-asr")
    ap.add_argument("--limit", "--n", dest="limit", type=int, default=40,
                    help="first N dev utterances")
    ap.add_argument("--voices", default=",".join(BENCH_VOICES), help="comma list of caller voices")
    ap.add_argument("--engines", default="tiny,base", help="comma list: tiny, base, sphinx")
    ap.add_argument("--prompt", action=argparse.BooleanOptionalAction, default=True,
                    help="with (default) or without (--no-prompt) the menu prompt")
    ap.add_argument("--both-prompts", action="store_true", help="run with and without the prompt")
    ap.add_argument("--noise-share", type=float, default=0.3,
                    help="share of utterances under the kitchen noise bed (15 dB SNR)")
    ap.add_argument("--beam-size", type=int, default=None, help="Whisper beam size override")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="PIZZA JSON-lines file")
    ap.add_argument("--tts-rounds", type=int, default=0, help="passes over the agent prompts")
    ap.add_argument("--transcripts", type=Path, help="write every transcript here (JSON lines)")
    ap.add_argument("--audio-cache", type=Path, default=AUDIO_CACHE,
                    help="where synthesised caller lines are kept between runs")
    args = ap.parse_args(argv)
    voices = [v.strip() for v in args.voices.split(",") if v.strip()]
    if unknown := sorted(set(voices) - set(VOICES)):
        ap.error(f"unknown voices {unknown}; known: {', '.join(VOICES)}")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if unknown := sorted(set(engines) - set(ENGINES)):
        ap.error(f"unknown engines {unknown}; known: {', '.join(ENGINES)}")
    if args.limit < 1:
        ap.error("--limit must be at least 1")
    if not 0.0 <= args.noise_share <= 1.0:
        ap.error("--noise-share must be between 0 and 1")
    prompts = [False, True] if args.both_prompts else [args.prompt]

    gold = read_gold(args.data.resolve(), args.limit)
    refs = [src for src, _ in gold]
    menu = pizza_menu(DEFAULT_CATALOGS.resolve())
    prompt_text = menu_prompt(menu)
    judge = OrderJudge(menu)
    text_right = sum(order_right(judge.parsers[True], menu, src, exr) for src, exr in gold)
    options = DecodeOptions() if args.beam_size is None else DecodeOptions(beam_size=args.beam_size)
    asrs = load_engines(engines, menu, options)
    bed = NoiseBed.kitchen(NOISE_SNR_DB) if args.noise_share > 0 else None
    t_start = time.monotonic()
    rows: list[tuple[str, str, bool, AsrRun]] = []
    for name in voices:
        audio = [phone_line(endpointed(cached_line(name, text, args.audio_cache),
                                       bed if noisy_at(i, args.noise_share) else None, i))
                 for i, text in enumerate(refs)]
        for engine, asr in asrs.items():
            for use_prompt in ([False] if engine == "sphinx" else prompts):
                prompt = prompt_text if use_prompt else ""
                rows.append((name, engine, use_prompt, run_asr(asr, audio, gold, prompt, judge)))
    if args.transcripts:
        with args.transcripts.open("w") as fh:
            for name, engine, use_prompt, run in rows:
                for i, (ref, hyp) in enumerate(zip(refs, run.hyps, strict=True)):
                    fh.write(json.dumps({"voice": name, "engine": engine, "prompt": use_prompt,
                                         "noisy": noisy_at(i, args.noise_share), "ref": ref,
                                         "hyp": hyp, "order_exact": run.right[i]}) + "\n")

    print(f"voice (offline): {len(refs)} utterances from {args.data.name} x {len(voices)} voices, "
          f"{100 * args.noise_share:.0f}% under kitchen noise at {NOISE_SNR_DB:g} dB, G.711 "
          f"mu-law 8 kHz, {options.describe()}, wall {time.monotonic() - t_start:.0f}s; "
          f"exact % = parse of the transcript is the gold tree (no-fz: without sound-alike repair)")
    print_table(rows, text_right, len(gold))
    if args.tts_rounds > 0:
        bp = compose_builtin("restaurant_orders", "demo_pizza")
        tts = PiperTts()
        tts.load()
        texts = agent_prompts(bp)
        next(tts.sentences(texts[0]))  # warm-up, not measured
        tts_ms = first_sentence_ms(tts, texts, args.tts_rounds)
        print(f"piper first sentence over {len(texts)} agent prompts x {args.tts_rounds}: "
              f"p50={percentile(tts_ms, 50):.0f} ms p99={percentile(tts_ms, 99):.0f} ms")
    return 0
