"""Speech accuracy and latency over a simulated phone line: caller TTS -> G.711 -> Whisper.

`voxeron bench voice --n 40 --voices piper,espeak,flite` synthesises the first N PIZZA dev
utterances with each caller voice, passes them through mu-law encode/decode, transcribes
them with Whisper tiny.en with and without the blueprint's menu prompt, and prints per
voice x prompt: WER %, exact-utterance %, RTF and ASR latency p50/p99. It also prints
Piper's time to first sentence over the agent's prompts. `--prompt` / `--no-prompt` run
only that variant (default: both).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from appliance.voice.asr_whisper import WhisperAsr
from appliance.voice.g711 import ulaw_decode, ulaw_encode
from appliance.voice.tts_piper import PiperTts
from benchmarks.nlu import percentile
from benchmarks.word_error import WerTally
from blueprints.engine import compose_builtin
from blueprints.model import Blueprint
from voxeron.caller_voices import caller_voice

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "pizza" / "PIZZA_dev.json"
VOICES = ("piper", "espeak", "flite")
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

    @property
    def rtf(self) -> float:
        return sum(self.decode_ms) / 1000 / self.audio_s if self.audio_s else 0.0


def read_utterances(path: Path, n: int) -> list[str]:
    """The first `n` utterances ('src' or the split's '*.SRC' field) of a JSON-lines file."""
    out: list[str] = []
    with path.open() as fh:
        for line in fh:
            if len(out) >= n:
                break
            if line.strip():
                row = json.loads(line)
                out.append(str(row.get("src") or next(v for k, v in row.items()
                                                      if k.endswith(".SRC"))))
    return out


def phone_line(pcm8k: np.ndarray) -> np.ndarray:
    """What the box hears: 8 kHz audio after G.711 mu-law encode and decode."""
    return ulaw_decode(ulaw_encode(pcm8k))


def run_asr(asr: WhisperAsr, audio: list[np.ndarray], refs: list[str], prompt: str) -> AsrRun:
    run = AsrRun()
    for pcm, ref in zip(audio, refs, strict=True):
        t0 = time.perf_counter()
        text = asr.transcribe(pcm, prompt=prompt).text
        run.decode_ms.append((time.perf_counter() - t0) * 1000)
        run.audio_s += len(pcm) / RATE
        run.tally.add(ref, text)
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


def main(argv: list[str]) -> int:
    """Run the benchmark and print the table; returns 0."""
    ap = argparse.ArgumentParser(prog="voxeron bench voice")
    ap.add_argument("--n", type=int, default=40, help="first N dev utterances")
    ap.add_argument("--voices", default=",".join(VOICES), help="comma list of caller voices")
    ap.add_argument("--prompt", action=argparse.BooleanOptionalAction, default=None,
                    help="only with (--prompt) or without (--no-prompt) the menu prompt")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="PIZZA JSON-lines file")
    ap.add_argument("--tts-rounds", type=int, default=3, help="passes over the agent prompts")
    args = ap.parse_args(argv)
    voices = [v.strip() for v in args.voices.split(",") if v.strip()]
    if unknown := sorted(set(voices) - set(VOICES)):
        ap.error(f"unknown voices {unknown}; known: {', '.join(VOICES)}")
    prompts = [False, True] if args.prompt is None else [args.prompt]

    refs = read_utterances(args.data.resolve(), args.n)
    bp = compose_builtin("restaurant_orders", "demo_pizza")
    asr = WhisperAsr()
    asr.load()
    asr.transcribe(np.zeros(RATE, dtype=np.int16))  # warm-up, not measured
    t_start = time.monotonic()
    rows: list[tuple[str, bool, AsrRun]] = []
    for name in voices:
        voice = caller_voice(name)
        audio = [phone_line(voice.synthesize(text)) for text in refs]
        for use_prompt in prompts:
            rows.append((name, use_prompt, run_asr(asr, audio, refs, bp.asr_hints if use_prompt else "")))

    tts = PiperTts()
    tts.load()
    texts = agent_prompts(bp)
    next(tts.sentences(texts[0]))  # warm-up, not measured
    tts_ms = first_sentence_ms(tts, texts, args.tts_rounds)

    print(f"voice: {len(refs)} utterances from {args.data.name}, Whisper tiny.en, G.711 mu-law "
          f"8 kHz, wall {time.monotonic() - t_start:.0f}s")
    print(f"{'voice':<8}{'prompt':<8}{'WER %':>7}{'exact %':>9}{'RTF':>7}{'p50 ms':>8}{'p99 ms':>8}")
    for name, use_prompt, run in rows:
        print(f"{name:<8}{'menu' if use_prompt else 'none':<8}{run.tally.wer:>7.1f}"
              f"{run.tally.exact_rate:>9.1f}{run.rtf:>7.3f}"
              f"{percentile(run.decode_ms, 50):>8.0f}{percentile(run.decode_ms, 99):>8.0f}")
    print(f"piper first sentence over {len(texts)} agent prompts x {args.tts_rounds}: "
          f"p50={percentile(tts_ms, 50):.0f} ms p99={percentile(tts_ms, 99):.0f} ms")
    return 0
