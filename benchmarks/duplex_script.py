"""The bench caller's half of a call as a pure state machine over packet times (time passed in).

Unlike voxeron/caller_script.py it talks over the agent when told to (barge-in), and it
measures at the packet level: greeting = ACK -> first agent RTP packet; turn latency = last
packet of the caller's speech -> first agent packet after it; barge-in stop = the caller's
speech onset -> the last agent packet before the agent goes quiet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BargeAt = Literal["none", "greeting", "readback"]


@dataclass(frozen=True)
class Speak:
    """Say line `index` now (`over_agent`: the agent is still talking)."""

    index: int
    over_agent: bool


@dataclass(frozen=True)
class HangUp:
    """Send BYE: the script is done or the agent went silent."""

    reason: str


Action = Speak | HangUp


@dataclass
class Timings:
    """What one call measured, in milliseconds."""

    greeting_ms: float | None = None
    turn_ms: list[float | None] = field(default_factory=list)  # per caller line
    barge_ms: float | None = None
    barged: bool = False  # the caller did talk over the agent


@dataclass
class DuplexScript:
    """Feed agent packet arrivals and ticks; speak lines when the returned actions say so.

    `barge_at` names the agent turn to talk over: the greeting (with line 0) or the read-back
    (the turn before the last line), `barge_after_s` into it; if that turn is over sooner the
    line is said normally after it.
    """

    lines: int
    barge_at: BargeAt = "none"
    barge_after_s: float = 1.0
    quiet_s: float = 0.7  # agent silence that ends its turn
    talking_s: float = 0.1  # a packet this recent means the agent is talking
    gap_s: float = 0.3  # after a barge-in, the agent has stopped once silent this long
    give_up_s: float = 10.0
    timings: Timings = field(default_factory=Timings)
    _ack: float = 0.0
    _next: int = 0  # next line to say
    _speaking: bool = False
    _heard_since: float | None = None  # first agent packet of the current agent turn
    _last_packet: float | None = None
    _line_end: float | None = None  # end of the caller's last line, awaiting the reply
    _waiting_since: float = 0.0
    _onset: float | None = None  # barge-in onset, until the agent's stop is measured
    _done: bool = False

    def answered(self, ack_at: float) -> None:
        """The ACK went out at `ack_at`; the agent greets first."""
        self._ack = self._waiting_since = ack_at

    def on_packet(self, at: float) -> list[Action]:
        """An agent RTP packet arrived at `at`."""
        t = self.timings
        if self._onset is not None and self._last_packet is not None \
                and at - self._last_packet >= self.gap_s:
            self._barge_stopped()
        if t.greeting_ms is None:
            t.greeting_ms = round((at - self._ack) * 1000, 1)
        if self._line_end is not None and self._onset is None:
            t.turn_ms[-1] = round((at - self._line_end) * 1000, 1)
            self._line_end = None
        if self._heard_since is None or (self._last_packet is not None
                                         and at - self._last_packet >= self.quiet_s):
            self._heard_since = at  # a new agent turn
        self._last_packet = at
        return self._maybe_barge(at)

    def on_tick(self, now: float) -> list[Action]:
        """Time passed (call every ~20 ms)."""
        last = self._last_packet
        if self._onset is not None and last is not None and now - last >= self.gap_s:
            self._barge_stopped()
        if self._done or self._speaking:
            return []
        quiet = last is None or now - last >= self.quiet_s
        replied = self._line_end is None and self._heard_since is not None
        if quiet and replied and self._next < self.lines:
            return [self._speak(False)]
        if quiet and replied and self._next >= self.lines and last is not None \
                and now - last >= self.give_up_s / 2:
            self._done = True
            return [HangUp("script done")]
        if quiet and now - max(self._waiting_since, last or 0.0) >= self.give_up_s:
            self._done = True
            return [HangUp(f"agent silent for {self.give_up_s:g} s")]
        return self._maybe_barge(now)

    def speech_started(self, at: float) -> None:
        """The first packet of the line went out at `at`."""
        if self._onset is not None and self.timings.barge_ms is None:
            self._onset = at

    def speech_ended(self, at: float) -> None:
        """The last packet of the line went out at `at`: the reply latency counts from here."""
        self._speaking = False
        self._line_end = self._waiting_since = at
        self._heard_since = None
        self.timings.turn_ms.append(None)

    def _speak(self, over_agent: bool) -> Speak:
        self._speaking = True
        action = Speak(self._next, over_agent)
        self._next += 1
        return action

    def _maybe_barge(self, now: float) -> list[Action]:
        if self._speaking or self._next >= self.lines or self._heard_since is None:
            return []
        target = {"greeting": 0, "readback": self.lines - 1}.get(self.barge_at)
        if target != self._next or self.timings.barged:
            return []
        talking = self._last_packet is not None and now - self._last_packet < self.talking_s
        if talking and now - self._heard_since >= self.barge_after_s:
            self.timings.barged = True
            self._onset = now  # replaced by the first packet's send time
            return [self._speak(True)]
        return []

    def _barge_stopped(self) -> None:
        assert self._onset is not None and self._last_packet is not None
        self.timings.barge_ms = round(max(0.0, self._last_packet - self._onset) * 1000, 1)
        self._onset = None
