"""Voice activity and end-of-utterance detection as a pure state machine.

Fed 20 ms frames of 8 kHz audio; never reads a clock (frame count is time). Energy-based
with an adaptive noise floor: good enough for a clean ATA line; issue 6 brings a model VAD.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FRAME_MS = 20


@dataclass
class EndpointConfig:
    start_frames: int = 3          # 60 ms of speech opens an utterance
    end_silence_ms: int = 600      # this much silence closes it
    pre_roll_frames: int = 10      # keep 200 ms before the start
    max_utterance_ms: int = 15000
    min_speech_db: float = -45.0   # absolute floor, dBFS
    over_noise_db: float = 12.0    # speech must be this far above the noise floor


@dataclass
class Utterance:
    audio: np.ndarray  # int16, 8 kHz
    speech_ms: int


@dataclass
class Endpointer:
    """Feed frames with `feed`; it returns an Utterance when one has ended."""

    config: EndpointConfig = field(default_factory=EndpointConfig)
    noise_db: float = -60.0
    _frames: list[np.ndarray] = field(default_factory=list)
    _speech_run: int = 0
    _silence_run: int = 0
    _in_speech: bool = False
    _speech_frames: int = 0

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def reset(self) -> None:
        self._frames.clear()
        self._speech_run = self._silence_run = self._speech_frames = 0
        self._in_speech = False

    def _is_speech(self, frame: np.ndarray) -> bool:
        rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) if frame.size else 0.0
        db = 20 * np.log10(max(rms, 1.0) / 32768.0)
        speech = db > self.config.min_speech_db and db > self.noise_db + self.config.over_noise_db
        if not speech:  # track the floor slowly, only on non-speech
            self.noise_db = 0.95 * self.noise_db + 0.05 * db
        return speech

    def feed(self, frame: np.ndarray) -> Utterance | None:
        cfg = self.config
        speech = self._is_speech(frame)
        self._frames.append(frame)
        if not self._in_speech:
            self._speech_run = self._speech_run + 1 if speech else 0
            if self._speech_run >= cfg.start_frames:
                self._in_speech, self._silence_run = True, 0
                self._speech_frames = self._speech_run
            else:
                del self._frames[:-cfg.pre_roll_frames]
            return None
        if speech:
            self._silence_run = 0
            self._speech_frames += 1
        else:
            self._silence_run += 1
        total_ms = len(self._frames) * FRAME_MS
        if self._silence_run * FRAME_MS >= cfg.end_silence_ms or total_ms >= cfg.max_utterance_ms:
            utt = Utterance(np.concatenate(self._frames), self._speech_frames * FRAME_MS)
            self.reset()
            return utt
        return None
