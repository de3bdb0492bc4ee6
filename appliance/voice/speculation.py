"""Speculative decoding and early endpointing for one caller turn, as a pure state machine.

Whisper does not stream, so the decode after end of speech (260-440 ms for tiny.en on two
cores) sits inside every turn. While the caller speaks, the session decodes the audio so
far in the background (at most one decode in flight, started as soon as the caller
pauses, and every `every_ms` of audio in a long utterance); when the utterance ends and a result covers all of its
speech, that result is the transcript and the final decode is skipped. When the dialog
says a covering result already answers the question (`complete`), the turn ends after
`early_end_ms` of silence instead of the policy's endpoint silence.

Fed 20 ms frames and results; never reads a clock, never runs a decode itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from appliance.voice.asr_whisper import Transcript

FRAME_MS = 20


@dataclass(frozen=True)
class SpeculationConfig:
    # New audio since the last launch that asks for another decode. Whisper encodes a 30 s
    # window whatever the length, so each decode costs the same CPU: the pause launch does
    # most of the work, periodic ones only keep a long utterance's result fresh.
    every_ms: int = 1200
    pause_ms: int = 120  # silence after speech that asks for a decode at once
    min_speech_ms: int = 240  # nothing worth decoding before this much speech
    early_end_ms: int = 280  # end-of-turn silence once a complete answer is in hand
    pre_roll_frames: int = 10  # kept before the utterance opens, like the endpointer's
    over_noise_db: float = 6.0  # more sensitive than the endpointer: never cut a quiet word
    min_speech_db: float = -50.0


@dataclass
class CallLoad:
    """Calls in progress in this voice process, shared by their sessions. Each speculative
    decode costs a full Whisper decode, so past `speculate_up_to` calls at once the two
    cores are left to the final decodes."""

    speculate_up_to: int = 2
    active: int = 0

    @property
    def speculation_allowed(self) -> bool:
        return self.active <= self.speculate_up_to


@dataclass(frozen=True)
class Launch:
    """Decode `audio` (the first `upto` frames of the utterance) for generation `generation`."""

    generation: int
    upto: int
    audio: np.ndarray


@dataclass(frozen=True)
class EndNow:
    """End the turn early: `audio` is the utterance so far, `transcript` already covers it."""

    audio: np.ndarray
    transcript: Transcript
    speech_ms: int


@dataclass(frozen=True)
class AwaitInFlight:
    """The decode in flight (of generation `generation`) covers the utterance: wait for it
    rather than start another one behind it."""

    generation: int


@dataclass
class _Result:
    upto: int
    transcript: Transcript
    complete: bool


@dataclass
class Speculator:
    """Per-call speculation state; `generation` changes whenever an utterance ends or resets."""

    config: SpeculationConfig = field(default_factory=SpeculationConfig)
    generation: int = 0
    noise_db: float = -60.0
    _pre: list[np.ndarray] = field(default_factory=list)
    _frames: list[np.ndarray] = field(default_factory=list)
    _open: bool = False
    _last_speech: int = -1  # index in _frames of the last frame heard as speech
    _speech_frames: int = 0
    _in_flight: bool = False
    _launched_upto: int = 0
    _best: _Result | None = None
    launches: int = 0
    used: int = 0

    @property
    def in_flight(self) -> bool:
        return self._in_flight

    def reset(self) -> None:
        """Forget the utterance (ended, cut or discarded); results in flight become stale."""
        self.generation += 1
        self._frames.clear()
        self._open, self._last_speech, self._speech_frames = False, -1, 0
        self._in_flight, self._launched_upto, self._best = False, 0, None

    def _speech(self, frame: np.ndarray) -> bool:
        rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) if frame.size else 0.0
        db = 20 * np.log10(max(rms, 1.0) / 32768.0)
        speech = db > self.config.min_speech_db and db > self.noise_db + self.config.over_noise_db
        if not speech:
            self.noise_db = 0.95 * self.noise_db + 0.05 * db
        return speech

    def feed(self, frame: np.ndarray, utterance_open: bool) -> Launch | EndNow | None:
        """One frame, after the endpointer has seen it; `utterance_open` is its in_speech."""
        speech = self._speech(frame)
        cfg = self.config
        if not utterance_open and self._open:  # the endpointer dropped it (too little speech)
            self.reset()
        if not utterance_open and not self._open:
            self._pre = (self._pre + [frame])[-cfg.pre_roll_frames:]
            return None
        if not self._open:
            self._open, self._frames = True, self._pre[:-1] + [frame]
            self._pre = []
        else:
            self._frames.append(frame)
        if speech:
            self._last_speech = len(self._frames) - 1
            self._speech_frames += 1
        early = self._early_end()
        if early is not None:
            return early
        return self._maybe_launch()

    def _silence_frames(self) -> int:
        return len(self._frames) - 1 - self._last_speech

    def _maybe_launch(self) -> Launch | None:
        cfg = self.config
        if self._in_flight or self._speech_frames * FRAME_MS < cfg.min_speech_ms:
            return None
        n = len(self._frames)
        uncovered = self._best is None or self._best.upto <= self._last_speech
        due = uncovered and (n - self._launched_upto) * FRAME_MS >= cfg.every_ms
        paused = (self._silence_frames() * FRAME_MS >= cfg.pause_ms
                  and self._launched_upto <= self._last_speech)
        if not (due or paused):
            return None
        self._in_flight, self._launched_upto = True, n
        self.launches += 1
        return Launch(self.generation, n, np.concatenate(self._frames))

    def on_result(self, generation: int, upto: int, transcript: Transcript,
                  complete: bool) -> EndNow | None:
        """A speculative decode finished; stale or older results are ignored."""
        if generation != self.generation:
            return None
        self._in_flight = False
        if self._best is None or upto >= self._best.upto:
            self._best = _Result(upto, transcript, complete)
        return self._early_end()

    def on_failed(self, generation: int) -> None:
        """The decode could not run (worker busy or gone): the next frame may launch again."""
        if generation == self.generation:
            self._in_flight = False

    def _covers_speech(self) -> bool:
        best = self._best
        return best is not None and bool(best.transcript.text) and best.upto > self._last_speech

    def _early_end(self) -> EndNow | None:
        best = self._best
        if (best is None or not best.complete or not self._covers_speech()
                or self._silence_frames() * FRAME_MS < self.config.early_end_ms):
            return None
        out = EndNow(np.concatenate(self._frames), best.transcript, self._speech_frames * FRAME_MS)
        self.used += 1
        self.reset()
        return out

    def finish(self, end_silence_ms: int) -> Transcript | AwaitInFlight | None:
        """The endpointer ended the utterance after `end_silence_ms` of its own silence: the
        speculative transcript if one covers all but that trailing silence, the decode in
        flight if it will, else None (decode it now). Resets."""
        best, generation = self._best, self.generation
        speech_end = len(self._frames) - end_silence_ms // FRAME_MS
        covered = best is not None and bool(best.transcript.text) and (
            best.upto >= speech_end or self._covers_speech())
        pending = self._in_flight and (self._launched_upto >= speech_end
                                       or self._launched_upto > self._last_speech)
        self.reset()
        if covered and best is not None:
            self.used += 1
            return best.transcript
        if pending:
            self.used += 1
            return AwaitInFlight(generation)
        return None
