"""Drain decisions of voxeron-sync: a pure object fed the outbox head, link state and time.

A window of up to `window` unacked events is in flight at once, always published in seq
order on the box's one connection, so the broker delivers them to the ingest in that
order. When the oldest in-flight event's ack does not come in time, everything in flight
is resent from that event on (go-back-N), again in seq order; the ingest is idempotent by
event id, so a resend of a stored event only earns a 'duplicate' ack. `window=1` is the
old stop-and-wait. Waits grow while the broker refuses publishes or the cloud stays
silent, so an outage costs no busy loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sync.contracts.events import EventEnvelope
from sync.contracts.messages import Ack

WaitReason = Literal["idle", "awaiting_ack", "offline", "backoff"]

# Unacked events in flight: enough to cover the cloud's group commit plus the round trip
# at thousands of events a second (128 drained ~2,300 events/s here, 512 ~3,700), and
# under Mosquitto's per-client queue (max_queued_messages, default 1000) for one box.
DEFAULT_WINDOW = 512


@dataclass(frozen=True)
class Publish:
    """Send these events now, in this (seq) order; attempt 1 is a first send, higher a resend."""

    events: tuple[EventEnvelope, ...]
    attempt: int

    @property
    def event(self) -> EventEnvelope:
        """The oldest event of the batch."""
        return self.events[0]


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
    seq: int
    sent_at: float
    attempt: int


class OutboxDrain:
    """What the sync link does next; every method takes `now` (monotonic seconds)."""

    def __init__(
        self, ack_timeout_s: float, *, window: int = DEFAULT_WINDOW, idle_poll_s: float = 0.5,
        offline_poll_s: float = 0.5, publish_backoff: Backoff = Backoff(),
        max_ack_wait_s: float = 120.0,
    ) -> None:
        if window < 1:
            raise ValueError(f"drain window must be at least 1, got {window}")
        self.ack_timeout_s = ack_timeout_s
        self.window = window
        self.idle_poll_s = idle_poll_s
        self.offline_poll_s = offline_poll_s
        self.publish_backoff = publish_backoff
        self.max_ack_wait_s = max(max_ack_wait_s, ack_timeout_s)
        # Insertion order is send order is seq order.
        self._in_flight: dict[str, _InFlight] = {}
        self._failures = 0
        self._retry_at = 0.0

    @property
    def in_flight(self) -> list[str]:
        """Event ids awaiting their ack, oldest first."""
        return list(self._in_flight)

    def ack_wait(self, attempt: int) -> float:
        """How long to wait for the ack of the `attempt`-th send before resending."""
        return min(self.max_ack_wait_s, self.ack_timeout_s * 2 ** (attempt - 1))

    def next_step(self, pending: Sequence[EventEnvelope], connected: bool, now: float) -> DrainStep:
        """Decide for the oldest unacked events `pending` (seq order; empty when drained)."""
        if not connected:
            return Wait(self.offline_poll_s, "offline")
        if now < self._retry_at:
            return Wait(self._retry_at - now, "backoff")
        window = pending[: self.window]
        if not window:
            self._in_flight.clear()
            return Wait(self.idle_poll_s, "idle")
        # Acked elsewhere (another process shares the store): no longer ours to wait for.
        pending_ids = {e.event_id for e in window}
        for event_id in [i for i in self._in_flight if i not in pending_ids]:
            del self._in_flight[event_id]
        oldest = self._in_flight.get(window[0].event_id)
        if oldest is not None:
            deadline = oldest.sent_at + self.ack_wait(oldest.attempt)
            if now >= deadline:
                resend = tuple(e for e in window if e.event_id in self._in_flight)
                return Publish(resend, oldest.attempt + 1)
        fresh = tuple(e for e in window if e.event_id not in self._in_flight)
        if fresh:
            return Publish(fresh, 1)
        assert oldest is not None  # everything in the window is in flight, the head too
        return Wait(oldest.sent_at + self.ack_wait(oldest.attempt) - now, "awaiting_ack")

    def published(self, step: Publish, now: float) -> None:
        """The broker accepted the publishes (PUBACK); their ack clocks start."""
        for event in step.events:
            self._in_flight[event.event_id] = _InFlight(event.seq, now, step.attempt)
        self._failures = 0

    def publish_failed(self, now: float) -> float:
        """The broker did not take the publish; returns the delay before the next try."""
        self._failures += 1
        delay = self.publish_backoff.delay(self._failures)
        self._retry_at = now + delay
        return delay

    def ack_received(self, ack: Ack) -> bool:
        """Note an ack from the cloud; True when it ends the wait for an event in flight."""
        return self._in_flight.pop(ack.event_id, None) is not None
