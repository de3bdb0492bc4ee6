"""Drain decisions of voxeron-sync: a pure object fed the outbox head, link state and time.

Stop-and-wait keeps the cloud's view in seq order: one event is in flight, it is resent
when its ack does not come, and the next one goes only after an ack. Waits grow while the
broker refuses publishes or the cloud stays silent, so an outage costs no busy loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sync.contracts.events import EventEnvelope
from sync.contracts.messages import Ack

WaitReason = Literal["idle", "awaiting_ack", "offline", "backoff"]


@dataclass(frozen=True)
class Publish:
    """Send this event now; attempt 1 is the first send, higher numbers are resends."""

    event: EventEnvelope
    attempt: int


@dataclass(frozen=True)
class Wait:
    """Nothing to send for `seconds` (an ack or a new outbox row may end the wait early)."""

    seconds: float
    reason: WaitReason


DrainStep = Publish | Wait


@dataclass(frozen=True)
class Backoff:
    """Exponential delay, capped: base, 2*base, 4*base ... cap."""

    base_s: float = 1.0
    cap_s: float = 30.0

    def delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return min(self.cap_s, self.base_s * 2 ** (failures - 1))


@dataclass(frozen=True)
class _InFlight:
    event_id: str
    seq: int
    sent_at: float
    attempt: int


class OutboxDrain:
    """What the sync link does next; every method takes `now` (monotonic seconds)."""

    def __init__(
        self, ack_timeout_s: float, *, idle_poll_s: float = 0.5, offline_poll_s: float = 0.5,
        publish_backoff: Backoff = Backoff(), max_ack_wait_s: float = 120.0,
    ) -> None:
        self.ack_timeout_s = ack_timeout_s
        self.idle_poll_s = idle_poll_s
        self.offline_poll_s = offline_poll_s
        self.publish_backoff = publish_backoff
        self.max_ack_wait_s = max(max_ack_wait_s, ack_timeout_s)
        self._in_flight: _InFlight | None = None
        self._failures = 0
        self._retry_at = 0.0

    @property
    def in_flight(self) -> str | None:
        """Event id awaiting its ack, if any."""
        return self._in_flight.event_id if self._in_flight else None

    def ack_wait(self, attempt: int) -> float:
        """How long to wait for the ack of the `attempt`-th send before resending."""
        return min(self.max_ack_wait_s, self.ack_timeout_s * 2 ** (attempt - 1))

    def next_step(self, head: EventEnvelope | None, connected: bool, now: float) -> DrainStep:
        """Decide for the oldest unacked event `head` (None when the outbox is empty)."""
        if not connected:
            return Wait(self.offline_poll_s, "offline")
        if now < self._retry_at:
            return Wait(self._retry_at - now, "backoff")
        if head is None:
            self._in_flight = None
            return Wait(self.idle_poll_s, "idle")
        flight = self._in_flight
        if flight is None or flight.event_id != head.event_id:
            return Publish(head, 1)
        deadline = flight.sent_at + self.ack_wait(flight.attempt)
        if now < deadline:
            return Wait(deadline - now, "awaiting_ack")
        return Publish(head, flight.attempt + 1)

    def published(self, step: Publish, now: float) -> None:
        """The broker accepted the publish (PUBACK); the ack clock starts."""
        self._in_flight = _InFlight(step.event.event_id, step.event.seq, now, step.attempt)
        self._failures = 0

    def publish_failed(self, now: float) -> float:
        """The broker did not take the publish; returns the delay before the next try."""
        self._failures += 1
        delay = self.publish_backoff.delay(self._failures)
        self._retry_at = now + delay
        return delay

    def ack_received(self, ack: Ack) -> bool:
        """Note an ack from the cloud; True when it ends the wait for the event in flight."""
        if self._in_flight is not None and self._in_flight.event_id == ack.event_id:
            self._in_flight = None
            return True
        return False
