"""The box's day figures, day resync and outbox pruning on a real SQLite store."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.store import LocalStore, reconciliation
from sync.contracts.messages import day_digest
from sync.contracts.order import OrderLine
from sync.ids import new_id

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
LINES = [OrderLine(line_id="l1", item_id="coke", name="Coke", quantity=1, unit_price_cents=249)]


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "box.sqlite3")


def submit(store: LocalStore, at: datetime) -> str:
    order, _ = store.submit_order(
        tenant_id="ten_a", device_id="dev_a", call_id=new_id("call"), caller=None, lines=LINES,
        currency="USD", blueprint_hash="bp", idempotency_key=new_id("job"), now=at)
    return order.order_id


def test_day_summary_counts_orders_tickets_and_pending_events(store: LocalStore) -> None:
    first, second = submit(store, NOW), submit(store, NOW + timedelta(minutes=5))
    submit(store, NOW + timedelta(days=1))  # another day
    [job, *_] = store.claim_print_jobs(NOW, limit=1)
    store.complete_print(job, "kitchen", NOW)
    for event in store.pending_events()[:2]:
        store.mark_acked(event.event_id, NOW)
    with store.transaction() as conn:
        day = reconciliation.day_summary(conn, NOW.date())
    assert (day.orders, day.tickets_printed) == (2, 1)
    assert day.digest == day_digest([(second, "submitted"), (first, "submitted")])
    assert day.pending_events == 1  # the ticket.printed event (the next day's is not counted)
    assert day.cancelled_order_ids == []


def test_resync_day_requeues_only_that_day_in_seq_order(store: LocalStore) -> None:
    submit(store, NOW)
    submit(store, NOW + timedelta(days=1))
    submit(store, NOW + timedelta(minutes=1))
    for event in store.pending_events():
        store.mark_acked(event.event_id, NOW)
    with store.transaction() as conn:
        assert reconciliation.resync_day(conn, NOW.date()) == 2
        assert reconciliation.resync_day(conn, NOW.date() - timedelta(days=3)) == 0
        assert reconciliation.events_on(conn, NOW.date() - timedelta(days=3)) == 0
    assert [e.seq for e in store.pending_events()] == [1, 3]


def test_pruning_deletes_old_acked_rows_and_keeps_every_unacked_one(store: LocalStore) -> None:
    old = NOW - timedelta(days=10)
    old_acked, old_unacked = submit(store, old), submit(store, old)
    recent = submit(store, NOW)
    events = {e.correlation.order_id: e for e in store.pending_events()}
    store.mark_acked(events[old_acked].event_id, old)
    store.mark_acked(events[recent].event_id, NOW)
    with store.transaction() as conn:
        assert reconciliation.oldest_unacked_age_s(conn, NOW) == pytest.approx(10 * 86400)
        assert reconciliation.prune_acked(conn, NOW - timedelta(days=7)) == 1
        assert reconciliation.prune_acked(conn, NOW - timedelta(days=7)) == 0
    with contextlib.closing(sqlite3.connect(store.path)) as conn:
        left = {r[0] for r in conn.execute(
            "SELECT json_extract(body, '$.correlation.order_id') FROM outbox")}
    assert left == {old_unacked, recent}
    assert [e.correlation.order_id for e in store.pending_events()] == [old_unacked]
