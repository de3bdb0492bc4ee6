"""Platform commands on the local store: each applied once per command id, each effect and its
outbox event in one transaction, bad input rejected with a reason and nothing written."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.store import LocalStore
from appliance.store.print_tickets import TicketMark
from sync.contracts.order import Order, OrderLine

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
LINE = OrderLine(line_id="l1", item_id="pizza", name="large pizza", quantity=2, size="large",
                 unit_price_cents=1699)


def _submit(store: LocalStore, key: str) -> Order:
    order, _ = store.submit_order(tenant_id="ten_a", device_id="dev_a", call_id=f"call_{key}",
                                  caller="555", lines=[LINE], currency="USD", blueprint_hash="h",
                                  idempotency_key=key, now=NOW)
    return order


def _print(store: LocalStore, now: datetime = NOW) -> list[str]:
    """Print every claimable ticket as a perfect printer would; returns their marks."""
    marks = []
    for job in store.claim_print_jobs(now):
        assert store.begin_print("ticket", job.action_id, 0, now)
        assert store.complete_print(job, "kitchen", now)
        marks.append(f"{job.order.number}:{job.mark or 'first'}")
    return marks


def _events(store: LocalStore) -> list[str]:
    return [e.data.type for e in store.pending_events(200)]


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "box.sqlite3")


def test_cancel_before_print_means_never_printed_and_twice_is_one_effect(store: LocalStore) -> None:
    order = _submit(store, "k1")
    first = store.cancel_order(order.order_id, "cmd_1", "caller rang back", NOW)
    again = store.cancel_order(order.order_id, "cmd_1", "caller rang back", NOW)
    assert (first.outcome, first.action_id) == ("applied", None)
    assert again.outcome == "duplicate" and again.reason and "cmd_1" in again.reason
    assert _print(store) == []
    assert store.action_status(order.order_id) == "cancelled"
    assert store.orders()[0].status == "cancelled"
    cancelled = [e.data for e in store.pending_events() if e.data.type == "order.cancelled"]
    assert [(c.order_id, c.ticket, c.reason) for c in cancelled] == [  # type: ignore[union-attr]
        (order.order_id, "never_printed", "caller rang back")]


def test_cancel_after_print_queues_one_cancelled_ticket(store: LocalStore) -> None:
    order = _submit(store, "k1")
    assert _print(store) == ["1:first"]
    result = store.cancel_order(order.order_id, "cmd_1", "no show", NOW)
    assert result.outcome == "applied" and result.action_id
    assert store.cancel_order(order.order_id, "cmd_1", "no show", NOW).outcome == "duplicate"
    other = store.cancel_order(order.order_id, "cmd_2", "no show", NOW)
    assert other.outcome == "rejected" and other.reason == f"order {order.order_id} is already cancelled"
    assert _print(store) == ["1:cancelled"]
    assert _events(store).count("order.cancelled") == 1


def test_reprint_twice_is_one_reprint_and_unknown_order_is_rejected(store: LocalStore) -> None:
    order = _submit(store, "k1")
    _print(store)
    first = store.reprint_ticket(order.order_id, "cmd_r", NOW)
    assert first.outcome == "applied"
    assert store.reprint_ticket(order.order_id, "cmd_r", NOW).action_id == first.action_id
    assert _print(store) == ["1:reprint"]
    assert _events(store).count("ticket.reprint_requested") == 1
    depth = store.outbox_depth()
    unknown = store.reprint_ticket("ord_nope", "cmd_x", NOW)
    assert unknown.outcome == "rejected" and unknown.reason == "unknown order ord_nope"
    assert store.outbox_depth() == depth
    # A rejected command leaves no row: the same id may apply once the order is right.
    assert store.reprint_ticket(order.order_id, "cmd_x", NOW).outcome == "applied"


def test_supersede_cancels_the_unprinted_ticket_and_prints_amended_under_the_same_number(
        store: LocalStore) -> None:
    old = _submit(store, "k1")
    replacement = old.model_copy(update={
        "order_id": "ord_replacement", "number": 99, "total_cents": 1699,
        "lines": [LINE.model_copy(update={"quantity": 1})]})
    result = store.supersede_order(old.order_id, replacement, "cmd_s", NOW)
    assert result.outcome == "applied" and result.replacement_order_id == "ord_replacement"
    assert store.supersede_order(old.order_id, replacement, "cmd_s", NOW).outcome == "duplicate"
    assert store.action_status(old.order_id) == "cancelled"
    assert _print(store) == ["1:amended"]
    live, retired = store.orders()
    assert (live.order_id, live.number, live.status) == ("ord_replacement", 1, "submitted")
    assert (retired.order_id, retired.number, retired.status) == (old.order_id, 1, "cancelled")
    assert store.order_for_call(old.call_id) == live
    superseded = [e.data for e in store.pending_events() if e.data.type == "order.superseded"]
    assert len(superseded) == 1 and superseded[0].replacement.number == 1  # type: ignore[union-attr]
    assert _submit(store, "k2").number == 2  # numbering goes on
    again = store.supersede_order(old.order_id, replacement, "cmd_s2", NOW)
    assert again.outcome == "rejected"


def test_supersede_rejects_a_replacement_it_cannot_take(store: LocalStore) -> None:
    old = _submit(store, "k1")
    for bad, why in ((old, "needs an order_id of its own"),
                     (old.model_copy(update={"order_id": "ord_b", "tenant_id": "ten_b"}),
                      "another tenant")):
        result = store.supersede_order(old.order_id, bad, "cmd_s", NOW)
        assert result.outcome == "rejected" and result.reason and why in result.reason
    assert store.action_status(old.order_id) == "pending" and len(store.orders()) == 1


def test_a_command_that_fails_midway_leaves_nothing(store: LocalStore) -> None:
    order = _submit(store, "k1")
    store._conn.execute("CREATE TRIGGER boom BEFORE INSERT ON applied_commands BEGIN "
                        "SELECT RAISE(ABORT, 'disk trouble'); END")
    with pytest.raises(sqlite3.IntegrityError):
        store.cancel_order(order.order_id, "cmd_1", "x", NOW)
    assert store.action_status(order.order_id) == "pending"
    assert store.orders()[0].status == "submitted" and _events(store) == ["order.submitted"]


def test_a_ticket_claimed_then_cancelled_is_not_sent(store: LocalStore) -> None:
    order = _submit(store, "k1")
    [job] = store.claim_print_jobs(NOW)
    store.cancel_order(order.order_id, "cmd_1", "x", NOW)
    assert not store.begin_print("ticket", job.action_id, 0, NOW)
    assert store.action_status(order.order_id) == "cancelled"


def test_retry_state_is_persisted_and_due_time_respected(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "box.sqlite3")
    order = _submit(store, "k1")
    [job] = store.claim_print_jobs(NOW)
    store.release_print("ticket", job.action_id, error="printer.timeout: slow", failed=True,
                        next_attempt_at=NOW + timedelta(seconds=30), now=NOW)
    store.close()
    store = LocalStore(tmp_path / "box.sqlite3")
    assert store.claim_print_jobs(NOW + timedelta(seconds=29)) == []
    [again] = store.claim_print_jobs(NOW + timedelta(seconds=30))
    assert again.failures == 1 and again.attempts == 2
    assert store.dead_letter_print(again, "kitchen", "printer.timeout: slow", NOW)
    assert store.action_status(order.order_id) == "dead_lettered"
    assert store.claim_print_jobs(NOW + timedelta(days=1)) == []
    summary = store.print_queue_summary()
    assert summary.tickets_dead_lettered == 1 and summary.printer is None


def test_reprint_mark_survives_the_queue(store: LocalStore) -> None:
    order = _submit(store, "k1")
    _print(store)
    store.reprint_ticket(order.order_id, "cmd_r", NOW)
    [job] = store.claim_print_jobs(NOW)
    assert job.mark is TicketMark.REPRINT and job.idempotency_key == "cmd:cmd_r"
