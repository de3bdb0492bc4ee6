"""The cloud's database for one node: SQLite via the stdlib, typed rows in and out.

Ingest is idempotent by event id: the event row and its effect on the order are written
in one transaction, so an event seen twice changes nothing the second time. One
connection per `CloudDb`, guarded by a lock, because FastAPI serves from a thread pool.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, computed_field

from cloud.control.migrations import migrate
from sync.contracts.events import EventEnvelope, OrderSubmitted, TicketPrinted
from sync.contracts.messages import DeviceStatus, Health
from sync.contracts.order import Order
from sync.sqlite_schema import immediate, open_wal

IngestOutcome = Literal["stored", "duplicate"]


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


class DeviceRecord(BaseModel):
    """A box as the cloud last heard of it."""

    tenant_id: str
    device_id: str
    online: bool
    last_seen: datetime | None
    last_health: Health | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def outbox_depth(self) -> int | None:
        """Unsynced events on the box at its last health report (None before the first)."""
        return self.last_health.outbox_depth if self.last_health else None


class OrderRecord(BaseModel):
    """An order as ingested, with what the cloud knows about its kitchen ticket."""

    order_id: str
    tenant_id: str
    device_id: str
    number: int
    ticket_printed_at: datetime | None
    created_at: datetime
    order: Order

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ticket_printed(self) -> bool:
        return self.ticket_printed_at is not None


_ORDER_COLUMNS = "order_id, tenant_id, device_id, number, ticket_printed_at, created_at, body"


def _order_record(row: tuple[str, str, str, int, str | None, str, str]) -> OrderRecord:
    order_id, tenant_id, device_id, number, printed, created, body = row
    return OrderRecord(
        order_id=order_id, tenant_id=tenant_id, device_id=device_id, number=number,
        ticket_printed_at=datetime.fromisoformat(printed) if printed else None,
        created_at=datetime.fromisoformat(created), order=Order.model_validate_json(body),
    )


class CloudDb:
    """Typed access to the cloud's SQLite file; several instances may share the file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        conn = open_wal(self.path)
        migrate(conn)
        self._conn = conn
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate(self._conn) as conn:
            yield conn

    def ingest_event(self, event: EventEnvelope, now: datetime) -> IngestOutcome:
        """Store an event once and apply it to its order; 'duplicate' if it was already here."""
        with self._transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event.event_id, event.tenant_id, event.device_id, event.seq, event.data.type,
                 event.model_dump_json(), _iso(now)),
            )
            if cur.rowcount == 0:
                return "duplicate"
            if isinstance(event.data, OrderSubmitted):
                self._insert_order(conn, event.data.order)
            elif isinstance(event.data, TicketPrinted):
                conn.execute(
                    "UPDATE orders SET ticket_printed_at = COALESCE(ticket_printed_at, ?) "
                    "WHERE order_id = ?", (_iso(event.data.printed_at), event.data.order_id),
                )
            self._touch(conn, event.tenant_id, event.device_id, now)
        return "stored"

    def _insert_order(self, conn: sqlite3.Connection, order: Order) -> None:
        # A ticket.printed that arrived first (the box drains in order, so only after a
        # replay) is not lost: take its time from the events table.
        printed = conn.execute(
            "SELECT MIN(json_extract(body, '$.data.printed_at')) FROM events "
            "WHERE type = 'ticket.printed' AND json_extract(body, '$.data.order_id') = ?",
            (order.order_id,),
        ).fetchone()[0]
        conn.execute(
            "INSERT OR IGNORE INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)",
            (order.order_id, order.tenant_id, order.device_id, order.number,
             order.model_dump_json(), _iso(datetime.fromisoformat(printed)) if printed else None,
             _iso(order.created_at)),
        )

    @staticmethod
    def _touch(conn: sqlite3.Connection, tenant_id: str, device_id: str, now: datetime) -> None:
        conn.execute(
            "INSERT INTO devices(tenant_id, device_id, online, last_seen) VALUES (?, ?, 1, ?) "
            "ON CONFLICT(tenant_id, device_id) DO UPDATE SET last_seen = excluded.last_seen",
            (tenant_id, device_id, _iso(now)),
        )

    def record_status(self, status: DeviceStatus, now: datetime) -> None:
        """Online/offline from the retained status topic; offline (the will) is not 'seen'."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO devices(tenant_id, device_id, online, last_seen) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(tenant_id, device_id) DO UPDATE SET online = excluded.online, "
                "last_seen = COALESCE(excluded.last_seen, devices.last_seen)",
                (status.tenant_id, status.device_id, int(status.online),
                 _iso(now) if status.online else None),
            )

    def record_health(self, health: Health, now: datetime) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO devices(tenant_id, device_id, online, last_seen, last_health) "
                "VALUES (?, ?, 1, ?, ?) ON CONFLICT(tenant_id, device_id) DO UPDATE SET "
                "last_seen = excluded.last_seen, last_health = excluded.last_health",
                (health.tenant_id, health.device_id, _iso(now), health.model_dump_json()),
            )

    def devices(self, tenant_id: str | None = None) -> list[DeviceRecord]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT tenant_id, device_id, online, last_seen, last_health FROM devices "
                "WHERE ? IS NULL OR tenant_id = ? ORDER BY tenant_id, device_id",
                (tenant_id, tenant_id),
            ).fetchall()
        return [
            DeviceRecord(
                tenant_id=t, device_id=d, online=bool(on),
                last_seen=datetime.fromisoformat(seen) if seen else None,
                last_health=Health.model_validate_json(h) if h else None,
            )
            for t, d, on, seen, h in rows
        ]

    def orders(self, tenant_id: str | None = None, limit: int = 50) -> list[OrderRecord]:
        """Newest first; every tenant when `tenant_id` is None (the fleet dashboard)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE ? IS NULL OR tenant_id = ? "
                "ORDER BY created_at DESC, number DESC LIMIT ?", (tenant_id, tenant_id, limit),
            ).fetchall()
        return [_order_record(r) for r in rows]

    def order(self, order_id: str) -> OrderRecord | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = ?", (order_id,)
            ).fetchone()
        return _order_record(row) if row else None
