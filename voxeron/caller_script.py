"""The scripted caller's half of a conversation, as a pure state machine (time passed in).

It speaks its next line once the agent has spoken and then been quiet for `quiet_s`, and
measures voice-to-voice latency where a real caller would feel it: from the end of its own
line to the first agent audio that follows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np
from pydantic import BaseModel

FRAME_S = 0.02


def frame_dbfs(frame: np.ndarray) -> float:
    """RMS level of int16 audio in dBFS (-inf for digital silence)."""
    if len(frame) == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))
    return 20 * math.log10(rms / 32768.0) if rms > 0 else -math.inf


class CallTurn(BaseModel):
    """One caller line and the agent's reply; times are seconds since the call was answered."""

    caller_text: str
    caller_started_s: float
    caller_finished_s: float
    agent_started_s: float | None = None
    latency_ms: float | None = None  # caller finished -> agent audio again
    agent_audio_ms: float = 0.0


@dataclass(frozen=True)
class Speak:
    """Say line `index` now."""

    index: int
    text: str


@dataclass(frozen=True)
class AgentSpeaks:
    """Agent audio started (again) at `at`."""

    at: float


@dataclass(frozen=True)
class AgentQuiet:
    """The agent has been quiet for `quiet_s` after `audio_ms` of audio."""

    at: float
    audio_ms: float


@dataclass(frozen=True)
class HangUp:
    """Give up on the agent and send BYE."""

    reason: str


Action = Speak | AgentSpeaks | AgentQuiet | HangUp


class Phase(Enum):
    """Whose turn it is."""

    WAITING = "waiting"  # for the agent to speak
    AGENT_TALKING = "agent_talking"
    CALLER_TALKING = "caller_talking"
    DONE = "done"  # script said; waiting for the agent's BYE
    HUNG_UP = "hung_up"


class CallerScript:
    """Feed it received frames (`on_frame`) and idle ticks (`on_tick`); do what it returns."""

    def __init__(self, lines: list[str], *, quiet_s: float = 0.7, give_up_s: float = 8.0,
                 threshold_dbfs: float = -40.0) -> None:
        self.lines = list(lines)
        self.quiet_s, self.give_up_s, self.threshold_dbfs = quiet_s, give_up_s, threshold_dbfs
        self.turns: list[CallTurn] = []
        self.greeting_ms = 0.0
        self.phase = Phase.WAITING
        self._t0 = 0.0
        self._since = 0.0  # when the current silence started
        self._next = 0
        self._talk_start = 0.0
        self._last_voiced = 0.0

    def start(self, now: float) -> None:
        """The call was answered at `now`; the agent is expected to greet first."""
        self._t0 = self._since = now

    def on_frame(self, frame: np.ndarray, now: float) -> list[Action]:
        """A frame of agent audio arrived at `now`."""
        if self.phase in (Phase.CALLER_TALKING, Phase.HUNG_UP):
            return []  # half duplex, like the agent: no barge-in
        if frame_dbfs(frame) <= self.threshold_dbfs:
            return self.on_tick(now)
        actions: list[Action] = []
        if self.phase in (Phase.WAITING, Phase.DONE):
            self.phase, self._talk_start = Phase.AGENT_TALKING, now
            if self.turns and self.turns[-1].agent_started_s is None:
                turn = self.turns[-1]
                turn.agent_started_s = round(now - self._t0, 3)
                turn.latency_ms = round((now - self._t0 - turn.caller_finished_s) * 1000, 1)
            actions.append(AgentSpeaks(now))
        self._last_voiced = now
        return actions

    def on_tick(self, now: float) -> list[Action]:
        """Time passed with no audio (the agent sends nothing while silent)."""
        if self.phase is Phase.AGENT_TALKING and now - self._last_voiced >= self.quiet_s:
            return self._agent_went_quiet(now)
        if self.phase in (Phase.WAITING, Phase.DONE) and now - self._since >= self.give_up_s:
            self.phase = Phase.HUNG_UP
            return [HangUp(f"agent silent for {self.give_up_s:g} s")]
        return []

    def caller_spoke(self, index: int, started: float, finished: float) -> None:
        """The I/O layer finished playing line `index` (loop times of first and last packet)."""
        self.turns.append(CallTurn(caller_text=self.lines[index],
                                   caller_started_s=round(started - self._t0, 3),
                                   caller_finished_s=round(finished - self._t0, 3)))
        self.phase, self._since = Phase.WAITING, finished

    def finish(self, now: float) -> None:
        """The call ended (BYE either way): close the agent's open stretch of audio."""
        if self.phase is Phase.AGENT_TALKING:
            self._add_audio(self._last_voiced + FRAME_S - self._talk_start)
        self.phase = Phase.HUNG_UP

    def _agent_went_quiet(self, now: float) -> list[Action]:
        span = self._last_voiced + FRAME_S - self._talk_start
        self._add_audio(span)
        actions: list[Action] = [AgentQuiet(now, round(span * 1000, 1))]
        if self._next < len(self.lines):
            actions.append(Speak(self._next, self.lines[self._next]))
            self._next += 1
            self.phase = Phase.CALLER_TALKING
        else:
            self.phase, self._since = Phase.DONE, now
        return actions

    def _add_audio(self, span_s: float) -> None:
        if self.turns:
            self.turns[-1].agent_audio_ms = round(self.turns[-1].agent_audio_ms + span_s * 1000, 1)
        else:
            self.greeting_ms = round(self.greeting_ms + span_s * 1000, 1)
