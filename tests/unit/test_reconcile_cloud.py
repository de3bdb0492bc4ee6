"""The cloud's reconciliation pass against a real cloud database: which divergence earns
which command, and when it must hold back (draining, a command still out, a loop)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud.control.db import CloudDb
from cloud.control.reconcile import MAX_RESYNCS_PER_DAY, issue_command, reconcile_device
from sync.contracts.errors import Correlation
from sync.contracts.events import EventEnvelope, OrderSubmitted
from sync.contracts.messages import CommandOutcome, DaySummary, ReportedState, day_digest
from sync.contracts.order import Order, OrderLine
from sync.ids import new_id

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
T, D = "ten_a", "dev_a"


@pytest.fixture
def db(tmp_path: Path) -> CloudDb:
    return CloudDb(tmp_path / "cloud.sqlite3")


def ingest_order(db: CloudDb, seq: int) -> str:
    order = Order(order_id=new_id("ord"), tenant_id=T, device_id=D, call_id=new_id("call"),
                  number=seq, lines=[OrderLine(line_id="l1", item_id="coke", name="Coke",
                                               quantity=1, unit_price_cents=249)],
                  total_cents=249, currency="USD", blueprint_hash="bp", created_at=NOW)
    event_id = new_id("evt")
    db.ingest_event(EventEnvelope(event_id=event_id, tenant_id=T, device_id=D, seq=seq,
                                  occurred_at=NOW, correlation=Correlation(event_id=event_id),
                                  data=OrderSubmitted(order=order)), NOW)
    return order.order_id


def report(statuses: dict[str, str], *, extra_orders: int = 0, pending: int = 0,
           commands: list[CommandOutcome] | None = None) -> ReportedState:
    digest_of = list(statuses.items()) + [(f"ord_missing{i}", "submitted")
                                          for i in range(extra_orders)]
    day = DaySummary(day=NOW.date(), orders=len(digest_of), tickets_printed=0,
                     digest=day_digest(digest_of), pending_events=pending,
                     cancelled_order_ids=sorted(o for o, s in statuses.items() if s == "cancelled"))
    return ReportedState(tenant_id=T, device_id=D, at=NOW, applied_version=0, status="applied",
                         days=[day], commands=commands or [])


def test_an_equal_day_or_a_draining_one_earns_no_command(db: CloudDb) -> None:
    orders = {ingest_order(db, 1): "submitted", ingest_order(db, 2): "submitted"}
    assert reconcile_device(db, report(orders), NOW) == []
    assert reconcile_device(db, report(orders, extra_orders=1, pending=1), NOW) == []


def test_missing_orders_earn_one_resync_at_a_time_and_at_most_a_few(db: CloudDb) -> None:
    orders = {ingest_order(db, 1): "submitted"}
    for _ in range(MAX_RESYNCS_PER_DAY):
        [resync] = reconcile_device(db, report(orders, extra_orders=1), NOW)
        assert (resync.kind, resync.day) == ("resync", NOW.date())
        assert reconcile_device(db, report(orders, extra_orders=1), NOW) == []  # still out
        done = CommandOutcome(command_id=resync.command_id, kind="resync", status="applied", at=NOW)
        db.record_reported(report(orders, extra_orders=1, commands=[done]), NOW)
    assert reconcile_device(db, report(orders, extra_orders=1), NOW) == []  # a loop: stop


def test_the_clouds_cancellation_wins(db: CloudDb) -> None:
    kept, cancelled = ingest_order(db, 1), ingest_order(db, 2)
    issue_command(db, T, D, "cancel", NOW, order_id=cancelled)  # the cloud's record says so
    record = db.order(cancelled)
    assert record is not None and record.order.status == "cancelled"
    box = report({kept: "submitted", cancelled: "submitted"})
    assert reconcile_device(db, box, NOW) == []  # the first cancel is still out
    [(first, _, _)] = db.device_commands(T, D)
    done = CommandOutcome(command_id=first.command_id, kind="cancel", status="rejected", at=NOW)
    db.record_reported(report({kept: "submitted", cancelled: "submitted"}, commands=[done]), NOW)
    [again] = reconcile_device(db, box, NOW)
    assert (again.kind, again.order_id) == ("cancel", cancelled)
    assert reconcile_device(db, report({kept: "submitted", cancelled: "cancelled"}), NOW) == []
