"""Barge-in: decide, frame by frame, that the caller is talking over the agent.

Pure (frame count is time, no clock). Energy-based like the endpointer, but stricter: a
real ATA leaks the agent's own voice back (hybrid echo), so speech must also stand well
above the level that echo of the current prompt can reach.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

FRAME_MS = 20


def frame_db(frame: np.ndarray) -> float:
    """RMS level of an int16 frame in dBFS, floored at -90 (digital silence)."""
    if frame.size == 0:
        return -90.0
    rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))
    return 20 * math.log10(max(rms, 1.0) / 32768.0)


def speech_level_db(pcm: np.ndarray, percentile: float = 75.0) -> float:
    """How loud a prompt is where it is voiced: the echo reference for barge-in."""
    frames = [frame_db(pcm[i:i + 160]) for i in range(0, len(pcm) - 159, 160)]
    voiced = [d for d in frames if d > -50.0]
    return float(np.percentile(voiced, percentile)) if voiced else -90.0


@dataclass(frozen=True)
class BargeInConfig:
    """Thresholds derived from the policy's `barge_in_sensitivity` (0 = never, 1 = most)."""

    enabled: bool
    speech_frames: int        # this many speech frames ...
    window_frames: int        # ... within this many recent frames trigger
    over_noise_db: float      # above the caller's noise floor
    min_speech_db: float      # absolute floor, dBFS
    echo_return_loss_db: float = 12.0  # assumed line echo attenuation (G.168 allows 6 dB)
    echo_margin_db: float = 6.0        # speech must beat the expected echo by this much
    pre_roll_frames: int = 10          # handed to the endpointer so the onset is not lost

    @classmethod
    def from_sensitivity(cls, sensitivity: float) -> BargeInConfig:
        """0 -> disabled; 1 -> 3 frames (60 ms), 10 dB over noise; 0.5 -> 9 frames, 20 dB."""
        s = min(max(sensitivity, 0.0), 1.0)
        frames = round(3 + (1.0 - s) * 12)
        return cls(enabled=s > 0.0, speech_frames=frames, window_frames=frames + (frames + 1) // 2,
                   over_noise_db=10.0 + (1.0 - s) * 20.0, min_speech_db=-45.0 + (1.0 - s) * 15.0)


@dataclass
class BargeInDetector:
    """Feed every caller frame with whether the agent is playing; True means stop playback now.

    While the agent is silent the detector only learns the caller's noise floor. Set the
    echo reference with `start_prompt(level_db)` when a prompt starts playing.
    """

    config: BargeInConfig
    noise_db: float = -60.0
    echo_ref_db: float = -90.0
    _recent: deque[np.ndarray] = field(default_factory=deque)
    _speech: deque[bool] = field(default_factory=deque)

    def start_prompt(self, level_db: float) -> None:
        """A prompt of voiced level `level_db` starts playing: echo up to that level minus ERL."""
        self.echo_ref_db = level_db
        self._speech.clear()

    @property
    def threshold_db(self) -> float:
        """Level a frame must exceed to count as caller speech during playback."""
        cfg = self.config
        echo = self.echo_ref_db - cfg.echo_return_loss_db + cfg.echo_margin_db
        return max(cfg.min_speech_db, self.noise_db + cfg.over_noise_db, echo)

    def feed(self, frame: np.ndarray, agent_playing: bool) -> bool:
        """One 20 ms caller frame; True once the caller is talking over the agent."""
        cfg = self.config
        self._recent.append(frame)
        while len(self._recent) > max(cfg.pre_roll_frames, cfg.window_frames):
            self._recent.popleft()
        db = frame_db(frame)
        if not agent_playing or not cfg.enabled:
            if db < self.noise_db + cfg.over_noise_db:  # learn the floor only on non-speech
                self.noise_db = 0.95 * self.noise_db + 0.05 * db
            self._speech.clear()
            return False
        self._speech.append(db > self.threshold_db)
        while len(self._speech) > cfg.window_frames:
            self._speech.popleft()
        if sum(self._speech) >= cfg.speech_frames:
            self._speech.clear()
            return True
        return False

    def onset(self) -> list[np.ndarray]:
        """The most recent frames (pre-roll plus the triggering speech) for the endpointer."""
        return list(self._recent)
