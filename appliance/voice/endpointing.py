"""End-of-utterance detection as a pure state machine over per-frame speech decisions.

Fed 20 ms frames of 8 kHz audio; never reads a clock (frame count is time). Whether a frame
is speech comes from a classifier (WebRTC's VAD by default, an energy threshold with an
adaptive noise floor as the fallback) or is passed in by the caller, so tests and other
detectors can drive the same machine. The machine alone decides start (a run of speech
frames), hangover (short gaps stay inside the utterance), end (enough silence) and drops
utterances with too little speech (a click or a cough).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

FRAME_MS = 20


class SpeechClassifier(Protocol):
    """Speech or not, one 20 ms frame at a time."""

    def is_speech(self, frame: np.ndarray) -> bool: ...


def frame_db(frame: np.ndarray) -> float:
    """Level of one frame in dBFS (silence floors at about -90)."""
    rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) if frame.size else 0.0
    return float(20 * np.log10(max(rms, 1.0) / 32768.0))


@dataclass
class EnergyVad:
    """Speech = loud enough in absolute terms and well above a slowly tracked noise floor."""

    min_speech_db: float = -45.0   # absolute floor, dBFS
    over_noise_db: float = 12.0    # speech must be this far above the noise floor
    noise_db: float = -60.0

    def is_speech(self, frame: np.ndarray) -> bool:
        db = frame_db(frame)
        speech = self._loud(db)
        if not speech:  # track the floor slowly, only on non-speech
            self._learn(db)
        return speech

    def gate(self, frame: np.ndarray, voiced: bool) -> bool:
        """Whether a frame another classifier judged is above the floor; the floor learns from
        the frames that classifier called unvoiced, so a steady hiss becomes the floor."""
        db = frame_db(frame)
        if not voiced:
            self._learn(db)
        return self._loud(db)

    def _loud(self, db: float) -> bool:
        return db > self.min_speech_db and db > self.noise_db + self.over_noise_db

    def _learn(self, db: float) -> None:
        self.noise_db = 0.95 * self.noise_db + 0.05 * db


@dataclass
class GatedVad:
    """A voice classifier's decision, vetoed when the frame is not above the line's noise floor.

    WebRTC's VAD alone can keep calling a steady hiss speech for seconds after the caller
    stops; the energy gate ends that without losing its ear for voice."""

    voice: SpeechClassifier
    floor: EnergyVad = field(default_factory=lambda: EnergyVad(min_speech_db=-55.0, over_noise_db=6.0))
    warmup_frames: int = 10  # the first 200 ms only measure the line (WebRTC's VAD settles too)
    _seen: int = 0

    def is_speech(self, frame: np.ndarray) -> bool:
        voiced = self.voice.is_speech(frame)
        if self._seen < self.warmup_frames:
            db = frame_db(frame)
            self.floor.noise_db = db if not self._seen else 0.8 * self.floor.noise_db + 0.2 * db
            self._seen += 1
            return False
        return self.floor.gate(frame, voiced) and voiced


def default_classifier(aggressiveness: int = 0) -> SpeechClassifier:
    """WebRTC's VAD gated by the noise floor when its wheel is installed, else energy alone."""
    try:
        from appliance.voice.vad import WebRtcVad
    except ImportError:
        return EnergyVad()
    return GatedVad(WebRtcVad(aggressiveness))


@dataclass
class EndpointConfig:
    start_frames: int = 3          # 60 ms of speech opens an utterance
    end_silence_ms: int = 600      # this much silence closes it (the hangover)
    pre_roll_frames: int = 10      # keep 200 ms before the start
    max_utterance_ms: int = 15000
    min_speech_ms: int = 100       # utterances with less speech than this are dropped
    resume_frames: int = 2         # this many speech frames in a row end a pause; fewer is a blip
    # WebRTC VAD 0..3 for the default classifier. 0 keeps every voice-like sound (tones too:
    # the integration tests' callers speak tones) and lets the noise-floor gate reject hiss.
    vad_aggressiveness: int = 0


@dataclass
class Utterance:
    audio: np.ndarray  # int16, 8 kHz
    speech_ms: int


@dataclass
class Endpointer:
    """Feed frames with `feed`; it returns an Utterance when one has ended."""

    config: EndpointConfig = field(default_factory=EndpointConfig)
    classifier: SpeechClassifier | None = None
    _frames: list[np.ndarray] = field(default_factory=list)
    _speech_run: int = 0
    _silence_run: int = 0
    _in_speech: bool = False
    _speech_frames: int = 0

    def __post_init__(self) -> None:
        if self.classifier is None:
            self.classifier = default_classifier(self.config.vad_aggressiveness)

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def reset(self) -> None:
        self._frames.clear()
        self._speech_run = self._silence_run = self._speech_frames = 0
        self._in_speech = False

    def feed(self, frame: np.ndarray, speech: bool | None = None) -> Utterance | None:
        """One frame; `speech` overrides the classifier's decision when given."""
        cfg = self.config
        if speech is None:
            assert self.classifier is not None  # set in __post_init__
            speech = self.classifier.is_speech(frame)
        self._frames.append(frame)
        if not self._in_speech:
            self._speech_run = self._speech_run + 1 if speech else 0
            if self._speech_run >= cfg.start_frames:
                self._in_speech, self._silence_run = True, 0
                self._speech_frames = self._speech_run
            else:
                del self._frames[:-cfg.pre_roll_frames]
            return None
        self._speech_run = self._speech_run + 1 if speech else 0
        if speech:
            self._speech_frames += 1
        if self._speech_run >= cfg.resume_frames or (speech and not self._silence_run):
            self._silence_run = 0
        else:
            self._silence_run += 1
        total_ms = len(self._frames) * FRAME_MS
        if self._silence_run * FRAME_MS >= cfg.end_silence_ms or total_ms >= cfg.max_utterance_ms:
            utt = Utterance(np.concatenate(self._frames), self._speech_frames * FRAME_MS)
            self.reset()
            return utt if utt.speech_ms >= cfg.min_speech_ms else None
        return None
