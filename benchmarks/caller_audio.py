"""Caller audio for the call benchmark: lines at one speaking level, and a kitchen noise bed.

Every voice is trimmed to its speech and brought to the same active level, so voices differ
in how they sound, not in how loud they are; the noise bed (sox brown + pink noise with a
slow tremolo, like fans and a dishwasher) runs for the whole call at a fixed SNR below it.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxeron.caller_voices import read_wav_8k

FRAME = 160  # 20 ms at 8 kHz
SPEECH_LEVEL_DBFS = -20.0  # active speech level of every caller line
SILENCE_DBFS = -45.0


def frame_levels(pcm: np.ndarray) -> np.ndarray:
    """dBFS of each whole 20 ms frame (digital silence floors at -90)."""
    n = len(pcm) // FRAME
    frames = pcm[: n * FRAME].astype(np.float64).reshape(n, FRAME) if n else np.zeros((0, FRAME))
    rms = np.sqrt(np.mean(frames**2, axis=1)) if n else np.zeros(0)
    return np.asarray(20 * np.log10(np.maximum(rms, 1.0) / 32768.0))


def trim(pcm: np.ndarray, floor_dbfs: float = SILENCE_DBFS) -> np.ndarray:
    """The line from its first to its last voiced frame, so 'end of speech' is the last word."""
    voiced = np.flatnonzero(frame_levels(pcm) > floor_dbfs)
    if len(voiced) == 0:
        return pcm
    return pcm[voiced[0] * FRAME: (voiced[-1] + 1) * FRAME]


def active_level_dbfs(pcm: np.ndarray) -> float:
    """Power level over the frames within 30 dB of the loudest (speech, not the pauses)."""
    levels = frame_levels(pcm)
    if len(levels) == 0:
        return -90.0
    active = levels[levels > levels.max() - 30.0]
    return float(10 * np.log10(np.mean(10 ** (active / 10))))


def at_level(pcm: np.ndarray, dbfs: float) -> np.ndarray:
    """`pcm` scaled so its active level is `dbfs` (clipped to int16)."""
    gain = 10 ** ((dbfs - active_level_dbfs(pcm)) / 20)
    return np.clip(pcm.astype(np.float64) * gain, -32768, 32767).astype(np.int16)


def caller_line(pcm: np.ndarray) -> np.ndarray:
    """A synthesized line as the bench speaks it: trimmed, at SPEECH_LEVEL_DBFS."""
    return at_level(trim(pcm), SPEECH_LEVEL_DBFS)


def _sox_noise(kind: str, seconds: float, seed: int, out: Path) -> np.ndarray:
    subprocess.run(["sox", "-R", "-n", "-r", "8000", "-b", "16", "-c", "1", str(out),
                    "synth", f"{seconds:g}", kind, "tremolo", f"{0.2 + seed % 5 / 10:g}", "30",
                    "gain", "-n", "-6"],
                   check=True, capture_output=True, timeout=30)
    return read_wav_8k(out).astype(np.float64)


def kitchen_noise(seconds: float = 30.0, seed: int = 0) -> np.ndarray:
    """Brown noise (rumble) plus pink noise (hiss) from sox, as float samples (any level)."""
    with tempfile.TemporaryDirectory() as tmp:
        brown = _sox_noise("brownnoise", seconds, seed, Path(tmp) / "brown.wav")
        pink = _sox_noise("pinknoise", seconds, seed + 1, Path(tmp) / "pink.wav")
    n = min(len(brown), len(pink))
    # Each call starts the loop at its own place, so concurrent calls do not share a noise.
    return np.roll(brown[:n] + 0.6 * pink[:n], seed * 997)


@dataclass
class NoiseBed:
    """Noise looped for the whole call, at `snr_db` below the caller's speech level."""

    samples: np.ndarray  # int16
    snr_db: float

    @classmethod
    def kitchen(cls, snr_db: float = 15.0, seed: int = 0) -> NoiseBed:
        noise = kitchen_noise(seed=seed)
        rms = math.sqrt(float(np.mean(noise**2))) or 1.0
        target = 32768.0 * 10 ** ((SPEECH_LEVEL_DBFS - snr_db) / 20)
        return cls(np.clip(noise * target / rms, -32768, 32767).astype(np.int16), snr_db)

    def frame(self, k: int) -> np.ndarray:
        """The k-th 20 ms frame of the loop."""
        n = len(self.samples) // FRAME
        i = (k % n) * FRAME
        return self.samples[i: i + FRAME]


def mixed(speech: np.ndarray | None, noise: np.ndarray | None) -> np.ndarray:
    """One frame of what the phone sends: speech plus noise (either may be absent)."""
    out = np.zeros(FRAME, dtype=np.int32)
    if speech is not None:
        out[: len(speech)] += speech
    if noise is not None:
        out += noise
    return np.clip(out, -32768, 32767).astype(np.int16)
