"""The drain decisions of voxeron-sync, driven with made-up time: outages in milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime

from appliance.outbox_drain import Backoff, OutboxDrain, Publish, Wait
from sync.contracts.errors import Correlation
from sync.contracts.events import EventEnvelope, TicketPrinted
from sync.contracts.messages import Ack

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)


def _event(seq: int) -> EventEnvelope:
    return EventEnvelope(
        event_id=f"evt_{seq}", tenant_id="ten_a", device_id="dev_a", seq=seq, occurred_at=NOW,
        correlation=Correlation(),
        data=TicketPrinted(order_id="ord_1", action_id="act_1", printer="kitchen", printed_at=NOW),
    )


def _ack(seq: int, status: str = "stored") -> Ack:
    return Ack(event_id=f"evt_{seq}", seq=seq, status=status)  # type: ignore[arg-type]


def test_one_event_in_flight_until_its_ack_then_the_next() -> None:
    drain = OutboxDrain(ack_timeout_s=10)
    first = drain.next_step(_event(1), connected=True, now=0.0)
    assert first == Publish(_event(1), 1)
    drain.published(first, 0.0)
    waiting = drain.next_step(_event(1), connected=True, now=3.0)
    assert waiting == Wait(7.0, "awaiting_ack")
    assert drain.ack_received(_ack(1)) is True
    assert drain.next_step(_event(2), connected=True, now=3.1) == Publish(_event(2), 1)


def test_missing_ack_resends_the_same_event_with_growing_waits() -> None:
    drain = OutboxDrain(ack_timeout_s=10, max_ack_wait_s=25)
    now = 0.0
    attempts = []
    for _ in range(4):
        step = drain.next_step(_event(1), connected=True, now=now)
        assert isinstance(step, Publish) and step.event.seq == 1
        attempts.append(step.attempt)
        drain.published(step, now)
        now += drain.ack_wait(step.attempt)
    assert attempts == [1, 2, 3, 4]
    assert [drain.ack_wait(a) for a in attempts] == [10, 20, 25, 25]


def test_offline_never_publishes_and_resumes_with_the_oldest_event() -> None:
    drain = OutboxDrain(ack_timeout_s=10, offline_poll_s=0.5)
    for minute in range(30):
        assert drain.next_step(_event(1), connected=False, now=minute * 60.0) == Wait(0.5, "offline")
    assert drain.next_step(_event(1), connected=True, now=1800.0) == Publish(_event(1), 1)


def test_refused_publishes_back_off_exponentially_to_a_cap() -> None:
    drain = OutboxDrain(ack_timeout_s=10, publish_backoff=Backoff(base_s=1, cap_s=8))
    delays = [drain.publish_failed(now=0.0) for _ in range(6)]
    assert delays == [1, 2, 4, 8, 8, 8]
    assert drain.next_step(_event(1), connected=True, now=5.0) == Wait(3.0, "backoff")
    step = drain.next_step(_event(1), connected=True, now=8.0)
    assert isinstance(step, Publish)
    drain.published(step, 8.0)
    assert drain.publish_failed(now=9.0) == 1  # a success resets the backoff


def test_ack_for_another_event_does_not_release_the_one_in_flight() -> None:
    drain = OutboxDrain(ack_timeout_s=10)
    step = drain.next_step(_event(2), connected=True, now=0.0)
    assert isinstance(step, Publish)
    drain.published(step, 0.0)
    assert drain.ack_received(_ack(1, "duplicate")) is False
    assert drain.in_flight == "evt_2"
    assert drain.ack_received(_ack(2, "rejected")) is True and drain.in_flight is None


def test_empty_outbox_idles_and_forgets_the_flight() -> None:
    drain = OutboxDrain(ack_timeout_s=10, idle_poll_s=0.25)
    step = drain.next_step(_event(1), connected=True, now=0.0)
    assert isinstance(step, Publish)
    drain.published(step, 0.0)
    # Another process acked it (the store is shared): the head is gone.
    assert drain.next_step(None, connected=True, now=1.0) == Wait(0.25, "idle")
    assert drain.in_flight is None
