"""Synthetic caller voices for `voxeron call`, the demo, tests and benchmarks.

Piper (the agent's own voice: an optimistic caller), espeak-ng and flite (Debian
packages: harder, robotic callers). All return 8 kHz int16 mono like a phone line.
The benchmark's further voices (`BENCH_VOICES`): every flite voice, festival's HTS slt
(Debian `festival festvox-us-slt-hts`) and Piper joe shifted in pitch and tempo with sox,
so no caller sounds like the agent.
"""

from __future__ import annotations

import subprocess
import tempfile
import wave
from pathlib import Path
from typing import Protocol

import numpy as np
import soxr

from appliance.voice.tts_piper import PiperTts


class CallerVoice(Protocol):
    def synthesize(self, text: str) -> np.ndarray: ...


class CommandVoice:
    """A TTS command line that writes a WAV file (espeak-ng, flite)."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv

    def synthesize(self, text: str) -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "say.wav"
            cmd = [a.replace("{out}", str(out)).replace("{text}", text) for a in self.argv]
            subprocess.run(cmd, check=True, capture_output=True, timeout=30)
            return read_wav_8k(out)


def read_wav_8k(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        raw = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"{path}: only 16-bit WAV is supported")
    audio = np.frombuffer(raw, dtype=np.int16).reshape(-1, channels)[:, 0].astype(np.float32)
    if rate != 8000:
        audio = soxr.resample(audio / 32768.0, rate, 8000) * 32768.0
    return np.clip(audio, -32768, 32767).astype(np.int16)


def write_wav(path: Path, pcm: np.ndarray, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype(np.int16).tobytes())


class FestivalVoice:
    """Festival's text2wave with one voice; the text goes in a file, never on a command line."""

    def __init__(self, voice: str) -> None:
        self.voice = voice

    def synthesize(self, text: str) -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:
            src, out = Path(tmp) / "say.txt", Path(tmp) / "say.wav"
            src.write_text(text)
            subprocess.run(["text2wave", "-eval", f"(voice_{self.voice})", str(src), "-o", str(out)],
                           check=True, capture_output=True, timeout=60)
            return read_wav_8k(out)


class ShiftedPiper:
    """Piper joe moved away from the agent's own voice: sox `pitch` (cents) and `tempo`."""

    def __init__(self, pitch_cents: int, tempo: float) -> None:
        self.pitch_cents, self.tempo = pitch_cents, tempo
        self.piper = PiperTts()

    def synthesize(self, text: str) -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:
            raw, out = Path(tmp) / "joe.wav", Path(tmp) / "shifted.wav"
            write_wav(raw, self.piper.synthesize(text, rate=22050), rate=22050)
            subprocess.run(["sox", str(raw), str(out), "pitch", str(self.pitch_cents),
                            "tempo", "-s", f"{self.tempo:g}", "gain", "-n", "-3"], check=True, capture_output=True,
                           timeout=30)
            return read_wav_8k(out)


# Voices unlike the agent's, for `voxeron bench voice` (name -> Debian packages it needs).
BENCH_VOICES: dict[str, tuple[str, ...]] = {
    "flite-awb": ("flite",), "flite-rms": ("flite",), "flite-slt": ("flite",),
    "flite-kal16": ("flite",), "festival-slt-hts": ("festival", "festvox-us-slt-hts"),
    "espeak": ("espeak-ng",), "piper-shifted": ("sox",),
}


def caller_voice(name: str) -> CallerVoice:
    if name.startswith("flite-") and name in BENCH_VOICES:
        return CommandVoice(["flite", "-voice", name.removeprefix("flite-"), "-t", "{text}",
                             "-o", "{out}"])
    if name == "festival-slt-hts":
        return FestivalVoice("cmu_us_slt_arctic_hts")
    if name == "piper-shifted":
        return ShiftedPiper(pitch_cents=-300, tempo=1.1)
    if name == "piper":
        return PiperTts()
    if name == "espeak":
        return CommandVoice(["espeak-ng", "-v", "en-us", "-s", "150", "-w", "{out}", "{text}"])
    if name == "flite":
        return CommandVoice(["flite", "-voice", "slt", "-t", "{text}", "-o", "{out}"])
    raise ValueError(f"unknown caller voice {name!r}: piper, espeak, flite or one of "
                     f"{', '.join(BENCH_VOICES)}")
