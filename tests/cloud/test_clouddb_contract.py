"""CloudDb (ingest and edge state) on both backends of the one database layer.

The same assertions on a SQLite file and on a throwaway PostgreSQL: an event ingested
twice is one row, orders and devices list per tenant, the edge-state round trip, and on
PostgreSQL row-level security keeps a tenant's rows from every other tenant.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.control.db import CloudDb
from sync.contracts.errors import Correlation
from sync.contracts.events import (
    EventData,
    EventEnvelope,
    OrderCancelled,
    OrderSubmitted,
    TicketPrinted,
)
from sync.contracts.messages import Command, CommandOutcome, DesiredState, Health, ReportedState
from sync.contracts.order import Order, OrderLine
from sync.ids import new_id
from tests.cloud.conftest import PgServer

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)


@pytest.fixture
def cloud_db(db_url: str, request: pytest.FixtureRequest) -> Iterator[CloudDb]:
    role = (request.getfixturevalue("pg_server").app_role
            if db_url.startswith("postgresql") else "voxeron_app")
    db = CloudDb.open(db_url, app_role=role)
    try:
        yield db
    finally:
        db.close()


def _order(tenant: str, device: str, number: int) -> Order:
    return Order(order_id=new_id("ord"), tenant_id=tenant, device_id=device,
                 call_id=new_id("call"), number=number,
                 lines=[OrderLine(line_id="l1", item_id="coke", name="Coke", quantity=1,
                                  unit_price_cents=249)],
                 total_cents=249, currency="USD", blueprint_hash="bp",
                 created_at=NOW + timedelta(minutes=number))


def _event(tenant: str, device: str, seq: int, data: EventData) -> EventEnvelope:
    event_id = new_id("evt")
    return EventEnvelope(event_id=event_id, tenant_id=tenant, device_id=device, seq=seq,
                         occurred_at=NOW, correlation=Correlation(event_id=event_id), data=data)


def test_an_event_ingested_twice_is_stored_once(cloud_db: CloudDb) -> None:
    tenant = new_id("ten")
    order = _order(tenant, "dev_a", 1)
    event = _event(tenant, "dev_a", 1, OrderSubmitted(order=order))
    assert cloud_db.ingest_event(event, NOW) == "stored"
    assert cloud_db.ingest_event(event, NOW) == "duplicate"
    assert cloud_db.ingest_events([event, event], NOW) == ["duplicate", "duplicate"]
    [record] = cloud_db.orders(tenant)
    assert record.order_id == order.order_id and record.order == order
    assert cloud_db.order(order.order_id) == record


def test_orders_and_devices_list_per_tenant(cloud_db: CloudDb) -> None:
    a, b = new_id("ten"), new_id("ten")
    events = [_event(a, "dev_1", n, OrderSubmitted(order=_order(a, "dev_1", n)))
              for n in (1, 2, 3)]
    events.append(_event(b, "dev_9", 1, OrderSubmitted(order=_order(b, "dev_9", 1))))
    assert cloud_db.ingest_events(events, NOW) == ["stored"] * 4
    cloud_db.record_health(Health(tenant_id=a, device_id="dev_1", at=NOW, outbox_depth=3,
                                  firmware="1.0"), NOW)
    assert [o.number for o in cloud_db.orders(a)] == [3, 2, 1]  # newest first
    assert [o.number for o in cloud_db.orders(a, limit=2)] == [3, 2]
    assert {o.tenant_id for o in cloud_db.orders(b)} == {b}
    [device] = cloud_db.devices(a)
    assert (device.device_id, device.online, device.outbox_depth) == ("dev_1", True, 3)
    assert {(d.tenant_id, d.device_id) for d in cloud_db.devices()} >= {(a, "dev_1"),
                                                                         (b, "dev_9")}


def test_ticket_before_order_and_cancellation_are_applied(cloud_db: CloudDb) -> None:
    tenant = new_id("ten")
    order = _order(tenant, "dev_a", 1)
    printed = TicketPrinted(order_id=order.order_id, action_id="act_1", printer="kitchen",
                            printed_at=NOW + timedelta(seconds=5))
    cloud_db.ingest_event(_event(tenant, "dev_a", 2, printed), NOW)  # a replay, out of order
    cloud_db.ingest_event(_event(tenant, "dev_a", 1, OrderSubmitted(order=order)), NOW)
    cloud_db.ingest_event(_event(tenant, "dev_a", 3, OrderCancelled(
        order_id=order.order_id, command_id="cmd_x", reason="test",
        ticket="cancel_slip_queued")), NOW)
    [record] = cloud_db.orders(tenant)
    assert record.ticket_printed_at == printed.printed_at
    assert cloud_db.day_orders(tenant, "dev_a", order.created_at.date()) == [
        (order.order_id, "cancelled", True)]


def test_desired_state_and_commands_round_trip(cloud_db: CloudDb) -> None:
    tenant = new_id("ten")

    def build(version: int, _tx: object = None) -> DesiredState:
        return DesiredState(tenant_id=tenant, device_id="dev_a", version=version, issued_at=NOW)

    assert [cloud_db.add_desired(tenant, "dev_a", build, NOW).version for _ in range(2)] == [1, 2]
    assert cloud_db.desired_state(tenant, "dev_a") == build(2)
    assert build(2) in cloud_db.unpublished_desired()
    cloud_db.mark_desired_published(build(2), NOW)
    assert build(2) not in cloud_db.unpublished_desired()

    order = _order(tenant, "dev_a", 1)
    cloud_db.ingest_event(_event(tenant, "dev_a", 1, OrderSubmitted(order=order)), NOW)
    command = Command(command_id=new_id("cmd"), tenant_id=tenant, device_id="dev_a",
                      issued_at=NOW, kind="cancel", order_id=order.order_id)
    cloud_db.add_command(command, "test", NOW, cancel_order=True)
    assert command in cloud_db.commands_to_publish(NOW)
    cloud_db.mark_command_published(command.command_id, NOW)
    assert command not in cloud_db.commands_to_publish(NOW - timedelta(seconds=1))
    assert cloud_db.day_orders(tenant, "dev_a", order.created_at.date())[0][1] == "cancelled"

    cloud_db.record_reported(ReportedState(
        tenant_id=tenant, device_id="dev_a", at=NOW, applied_version=2, status="applied",
        commands=[CommandOutcome(command_id=command.command_id, kind="cancel",
                                 status="applied", at=NOW)]), NOW)
    assert cloud_db.device_commands(tenant, "dev_a") == [(command, "applied", None)]
    assert cloud_db.device_commands(tenant, "dev_a", open_only=True) == []
    assert cloud_db.desired_versions(tenant) == [(tenant, "dev_a", 2, 2, "applied")]
    assert [r.applied_version for r in cloud_db.reported_states(tenant, "dev_a")] == [2]


def test_postgres_rls_keeps_tenants_apart(backend: str, cloud_db: CloudDb,
                                          request: pytest.FixtureRequest) -> None:
    a, b = new_id("ten"), new_id("ten")
    cloud_db.ingest_event(_event(a, "dev_1", 1, OrderSubmitted(order=_order(a, "dev_1", 1))),
                          NOW)
    assert cloud_db.orders(b) == [] and cloud_db.devices(b) == []
    if backend != "postgresql":
        return
    pg: PgServer = request.getfixturevalue("pg_server")
    with pg.connect_as(pg.app_role) as conn:  # directly at the database, as the app role
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (b,))
        for table in ("events", "orders", "devices"):
            row = conn.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s",
                               (a,)).fetchone()
            assert row == (0,), table
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (a,))
        assert conn.execute("SELECT count(*) FROM events WHERE tenant_id = %s",
                            (a,)).fetchone() == (1,)


def test_a_sqlite_file_written_by_the_old_clouddb_opens(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # the old per-file schema (PRAGMA user_version 1)
        conn.executescript("""
            CREATE TABLE devices (tenant_id TEXT NOT NULL, device_id TEXT NOT NULL,
                online INTEGER NOT NULL DEFAULT 0, last_seen TEXT, last_health TEXT,
                PRIMARY KEY (tenant_id, device_id));
            CREATE TABLE events (event_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL,
                device_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL,
                body TEXT NOT NULL, received_at TEXT NOT NULL);
            CREATE TABLE orders (order_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL,
                device_id TEXT NOT NULL, number INTEGER NOT NULL, body TEXT NOT NULL,
                ticket_printed_at TEXT, created_at TEXT NOT NULL);
            PRAGMA user_version = 1;
        """)
    db = CloudDb(path)
    try:
        event = _event("ten_a", "dev_a", 1, OrderSubmitted(order=_order("ten_a", "dev_a", 1)))
        assert db.ingest_event(event, NOW) == "stored"
        assert db.ingest_event(event, NOW) == "duplicate"
        assert db.desired_state("ten_a", "dev_a") is None  # migration 5 added the rest
        assert db.db.schema_version() >= 5
    finally:
        db.close()
