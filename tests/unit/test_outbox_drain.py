"""The drain decisions of voxeron-sync, driven with made-up time: outages in milliseconds.

Old single-event tests run with window=1 (stop-and-wait); the window tests below show
the same guarantees for N in flight: seq order, go-back-N resend, nothing skipped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

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


def _events(*seqs: int) -> tuple[EventEnvelope, ...]:
    return tuple(_event(s) for s in seqs)


def _ack(seq: int, status: str = "stored") -> Ack:
    return Ack(event_id=f"evt_{seq}", seq=seq, status=status)  # type: ignore[arg-type]


def test_window_of_one_is_stop_and_wait() -> None:
    drain = OutboxDrain(ack_timeout_s=10, window=1)
    first = drain.next_step(_events(1, 2), connected=True, now=0.0)
    assert first == Publish(_events(1), 1)
    drain.published(first, 0.0)
    waiting = drain.next_step(_events(1, 2), connected=True, now=3.0)
    assert waiting == Wait(7.0, "awaiting_ack")
    assert drain.ack_received(_ack(1)) is True
    assert drain.next_step(_events(2), connected=True, now=3.1) == Publish(_events(2), 1)


def test_missing_ack_resends_the_same_event_with_growing_waits() -> None:
    drain = OutboxDrain(ack_timeout_s=10, max_ack_wait_s=25)
    now = 0.0
    attempts = []
    for _ in range(4):
        step = drain.next_step(_events(1), connected=True, now=now)
        assert isinstance(step, Publish) and step.events == _events(1)
        attempts.append(step.attempt)
        drain.published(step, now)
        now += drain.ack_wait(step.attempt)
    assert attempts == [1, 2, 3, 4]
    assert [drain.ack_wait(a) for a in attempts] == [10, 20, 25, 25]


def test_offline_never_publishes_and_resumes_with_the_oldest_event() -> None:
    drain = OutboxDrain(ack_timeout_s=10, offline_poll_s=0.5)
    for minute in range(30):
        assert drain.next_step(_events(1, 2), connected=False, now=minute * 60.0) == Wait(
            0.5, "offline")
    assert drain.next_step(_events(1, 2), connected=True, now=1800.0) == Publish(_events(1, 2), 1)


def test_refused_publishes_back_off_exponentially_to_a_cap() -> None:
    drain = OutboxDrain(ack_timeout_s=10, publish_backoff=Backoff(base_s=1, cap_s=8))
    delays = [drain.publish_failed(now=0.0) for _ in range(6)]
    assert delays == [1, 2, 4, 8, 8, 8]
    assert drain.next_step(_events(1), connected=True, now=5.0) == Wait(3.0, "backoff")
    step = drain.next_step(_events(1), connected=True, now=8.0)
    assert isinstance(step, Publish)
    drain.published(step, 8.0)
    assert drain.publish_failed(now=9.0) == 1  # a success resets the backoff


def test_ack_for_another_event_does_not_release_the_one_in_flight() -> None:
    drain = OutboxDrain(ack_timeout_s=10)
    step = drain.next_step(_events(2), connected=True, now=0.0)
    assert isinstance(step, Publish)
    drain.published(step, 0.0)
    assert drain.ack_received(_ack(1, "duplicate")) is False
    assert drain.in_flight == ["evt_2"]
    assert drain.ack_received(_ack(2, "rejected")) is True and drain.in_flight == []


def test_empty_outbox_idles_and_forgets_the_flight() -> None:
    drain = OutboxDrain(ack_timeout_s=10, idle_poll_s=0.25)
    step = drain.next_step(_events(1, 2), connected=True, now=0.0)
    assert isinstance(step, Publish)
    drain.published(step, 0.0)
    # Another process acked them (the store is shared): the outbox is empty.
    assert drain.next_step((), connected=True, now=1.0) == Wait(0.25, "idle")
    assert drain.in_flight == []


def test_window_publishes_up_to_n_in_seq_order_and_tops_up_as_acks_arrive() -> None:
    drain = OutboxDrain(ack_timeout_s=10, window=3)
    first = drain.next_step(_events(1, 2, 3, 4, 5), connected=True, now=0.0)
    assert first == Publish(_events(1, 2, 3), 1)
    drain.published(first, 0.0)
    assert drain.next_step(_events(1, 2, 3, 4, 5), connected=True, now=1.0) == Wait(
        9.0, "awaiting_ack")
    assert drain.ack_received(_ack(1)) and drain.ack_received(_ack(2))
    top_up = drain.next_step(_events(3, 4, 5), connected=True, now=2.0)
    assert top_up == Publish(_events(4, 5), 1)  # 3 is still in flight: never sent twice early
    drain.published(top_up, 2.0)
    assert drain.in_flight == ["evt_3", "evt_4", "evt_5"]


def test_missing_ack_of_the_oldest_resends_everything_in_flight_from_it() -> None:
    drain = OutboxDrain(ack_timeout_s=10, window=4)
    step = drain.next_step(_events(1, 2, 3), connected=True, now=0.0)
    assert isinstance(step, Publish)
    drain.published(step, 0.0)
    assert drain.ack_received(_ack(2))  # out of order (another ingest replica): 1 is lost
    resend = drain.next_step(_events(1, 3, 4), connected=True, now=10.0)
    assert resend == Publish(_events(1, 3), 2)  # go-back-N in seq order; 4 waits its turn
    drain.published(resend, 10.0)
    assert drain.next_step(_events(1, 3, 4), connected=True, now=10.5) == Publish(_events(4), 1)


def test_acks_in_any_order_never_skip_an_event() -> None:
    drain = OutboxDrain(ack_timeout_s=1, window=8)
    outbox = list(range(1, 31))
    sent: list[int] = []
    now = 0.0
    while outbox:
        step = drain.next_step(_events(*outbox), connected=True, now=now)
        if isinstance(step, Publish):
            seqs = [e.seq for e in step.events]
            assert seqs == sorted(seqs)
            sent += seqs
            drain.published(step, now)
            for seq in reversed(seqs[1:]):  # every ack but the oldest's, newest first
                drain.ack_received(_ack(seq))
                outbox.remove(seq)
        now += 0.6  # the oldest's ack comes only after a resend
        if outbox and now > 1 and sent.count(outbox[0]) > 1:
            drain.ack_received(_ack(outbox[0]))
            outbox.pop(0)
    assert set(sent) == set(range(1, 31))


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window"):
        OutboxDrain(ack_timeout_s=10, window=0)
