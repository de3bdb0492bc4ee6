import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.dialog.order_tools import OrderTools
from appliance.store import LocalStore
from blueprints.engine import compose_builtin
from sync.contracts.errors import Correlation
from sync.contracts.order import OrderLine
from sync.contracts.tools import ToolCall

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
LINE = OrderLine(line_id="l1", item_id="pizza", name="large pizza", quantity=2, size="large",
                 unit_price_cents=1699)


def _submit(store: LocalStore, key: str, call_id: str = "call_1"):
    return store.submit_order(tenant_id="ten_a", device_id="dev_a", call_id=call_id, caller="555",
                              lines=[LINE], currency="USD", blueprint_hash="h",
                              idempotency_key=key, now=NOW)


def test_submit_writes_order_action_and_event_together(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "box.sqlite3")
    order, created = _submit(store, "k1")
    assert created and order.number == 1 and order.total_cents == 3398
    assert store.action_status(order.order_id) == "pending"
    [event] = store.pending_events()
    assert event.data.type == "order.submitted" and event.seq == 1
    assert event.correlation.order_id == order.order_id


def test_same_idempotency_key_never_makes_a_second_order(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "box.sqlite3")
    first, _ = _submit(store, "k1")
    again, created = _submit(store, "k1")
    assert not created and again.order_id == first.order_id
    assert len(store.orders()) == 1 and store.outbox_depth() == 1


def test_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "box.sqlite3")
    _submit(store, "k1")
    # Force the order-number UNIQUE constraint to fire mid-transaction.
    store._conn.execute("CREATE TRIGGER boom BEFORE INSERT ON actions BEGIN "
                        "SELECT RAISE(ABORT, 'disk trouble'); END")
    with pytest.raises(sqlite3.IntegrityError):
        _submit(store, "k2", call_id="call_2")
    assert len(store.orders()) == 1 and store.outbox_depth() == 1


def test_print_completion_is_once_and_emits_event(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "box.sqlite3")
    order, _ = _submit(store, "k1")
    [job] = store.claim_print_jobs(NOW)
    assert store.complete_print(job, "kitchen", NOW) is True
    assert store.complete_print(job, "kitchen", NOW) is False
    assert store.claim_print_jobs(NOW) == []
    assert [e.data.type for e in store.pending_events()] == ["order.submitted", "ticket.printed"]


def test_outbox_ack_and_second_process_sees_it(tmp_path: Path) -> None:
    a = LocalStore(tmp_path / "box.sqlite3")
    b = LocalStore(tmp_path / "box.sqlite3")
    _submit(a, "k1")
    [event] = b.pending_events()
    b.mark_acked(event.event_id, NOW)
    assert a.outbox_depth() == 0 and a.event_acked(event.event_id)


def test_order_tool_validates_and_submits(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "box.sqlite3")
    bp = compose_builtin("restaurant_orders", "demo_pizza")
    tools = OrderTools(store, bp, "ten_a", "dev_a")
    corr = Correlation(call_id="call_9")
    bad = tools.run(ToolCall(tool="order.submit", idempotency_key="x", correlation=corr,
                             args={"lines": []}), None, NOW)
    assert not bad.ok and bad.error and bad.error.category == "validation"
    good_call = ToolCall(tool="order.submit", idempotency_key="call_9:submit", correlation=corr,
                         args={"lines": [LINE.model_dump(mode="json")]})
    ok = tools.run(good_call, "555", NOW)
    again = tools.run(good_call, "555", NOW)
    assert ok.ok and ok.result and ok.result["number"] == 1 and ok.result["created"] is True
    assert again.result and again.result["order_id"] == ok.result["order_id"]
    assert again.result["created"] is False
    not_allowed = tools.run(ToolCall(tool="pos.delete_everything", correlation=corr), None, NOW)
    assert not not_allowed.ok and not_allowed.error and not_allowed.error.code == "tool.not_allowed"


def test_migration_5_keeps_slips_and_tickets_queued_before_it(tmp_path: Path) -> None:
    from appliance.store.migrations import MIGRATIONS
    from sync.sqlite_schema import apply_migrations, open_wal

    path = tmp_path / "box.sqlite3"
    conn = open_wal(path)
    apply_migrations(conn, MIGRATIONS[:4])
    conn.execute(
        "INSERT INTO print_slips(slip_id, kind, call_id, idempotency_key, title, lines, status, "
        "attempts, last_error, created_at, updated_at) VALUES ('act_s', 'handover', NULL, 'k', "
        "'CALL BACK', '[\"+31 20\"]', 'in_flight', 2, 'printer.timeout: x', ?, ?)",
        (NOW.isoformat(), NOW.isoformat()),
    )
    conn.close()
    store = LocalStore(path)
    [slip] = store.claim_slips(NOW)
    assert (slip.slip_id, slip.lines, slip.attempts, slip.failures) == ("act_s", ["+31 20"], 3, 0)
    assert store.begin_print("slip", slip.slip_id, 7, NOW)  # the widened CHECK takes printing
    assert store.printing_slip() is not None and store.claim_slips(NOW) == []
    order, _ = _submit(store, "k1")
    assert store.claim_print_jobs(NOW) == []  # one job printing at a time, slip or ticket
    assert store.complete_slip(slip, NOW)
    assert store.action_status(order.order_id) == "pending" and len(store.claim_print_jobs(NOW)) == 1
