"""What the box promised a caller for later: table bookings and staff follow-ups.

Lives in the local store's SQLite file (migration 3) behind its own connection, so a
booking's capacity check and insert are one transaction. Idempotency keys are UNIQUE in
the schema: a retried reservation.book or callback.schedule returns the first record.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from appliance.store.local_store import LocalStore
from sync.ids import new_id
from sync.sqlite_schema import immediate, open_wal

FollowUpKind = Literal["transfer", "callback"]


class Reservation(BaseModel):
    """A booked table; `slot_start` is in the tenant's local time (no zone)."""

    reservation_id: str
    tenant_id: str
    device_id: str
    call_id: str
    slot_start: datetime
    party_size: int = Field(ge=1)
    name: str
    phone: str | None
    status: Literal["booked", "cancelled"] = "booked"
    created_at: datetime


class FollowUp(BaseModel):
    """A transfer or callback the caller was promised, with the notes staff need."""

    follow_up_id: str
    kind: FollowUpKind
    tenant_id: str
    device_id: str
    call_id: str
    phone: str | None
    reason: str
    summary: dict[str, str]
    not_before: datetime | None
    status: Literal["pending", "done"] = "pending"
    created_at: datetime


class SlotFull(Exception):
    """The slot cannot take the party; `covers_left` says how many more guests it could."""

    def __init__(self, covers_left: int) -> None:
        super().__init__(f"only {covers_left} covers left")
        self.covers_left = covers_left


def _iso(t: datetime) -> str:
    return (t.astimezone(UTC) if t.tzinfo else t).isoformat(timespec="seconds")


_RESERVATION_COLUMNS = ("reservation_id, tenant_id, device_id, call_id, slot_start, party_size, "
                        "name, phone, status, created_at")
_FOLLOW_UP_COLUMNS = ("follow_up_id, kind, tenant_id, device_id, call_id, phone, reason, "
                      "summary, not_before, status, created_at")


class ReservationBook:
    """Typed access to the reservations and follow_ups tables; safe across threads."""

    def __init__(self, store: LocalStore) -> None:
        # The store has migrated the file; a connection of our own keeps our transactions
        # from interleaving with the store's on its shared connection.
        self._conn = open_wal(store.path)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate(self._conn) as conn:
            yield conn

    def covers_booked(self, tenant_id: str, slot_start: datetime) -> int:
        """Guests already booked into the slot that starts at `slot_start`."""
        with self._lock:
            return self._covers(self._conn, tenant_id, slot_start)

    @staticmethod
    def _covers(conn: sqlite3.Connection, tenant_id: str, slot_start: datetime) -> int:
        row = conn.execute(
            "SELECT COALESCE(SUM(party_size), 0) FROM reservations "
            "WHERE tenant_id = ? AND slot_start = ? AND status = 'booked'",
            (tenant_id, _iso(slot_start)),
        ).fetchone()
        return int(row[0])

    def book(self, *, tenant_id: str, device_id: str, call_id: str, slot_start: datetime,
             party_size: int, name: str, phone: str | None, capacity: int,
             idempotency_key: str, blueprint_hash: str, now: datetime) -> tuple[Reservation, bool]:
        """Book the party into the slot if it fits: (reservation, created); SlotFull if not.

        A key seen before returns its reservation unchanged, even if the slot is full now.
        """
        with self._transaction() as conn:
            existing = self._by_key(conn, idempotency_key)
            if existing is not None:
                return existing, False
            booked = self._covers(conn, tenant_id, slot_start)
            if booked + party_size > capacity:
                raise SlotFull(max(capacity - booked, 0))
            res = Reservation(reservation_id=new_id("act", int(now.timestamp() * 1000)),
                              tenant_id=tenant_id, device_id=device_id, call_id=call_id,
                              slot_start=slot_start, party_size=party_size, name=name,
                              phone=phone, created_at=now)
            conn.execute(
                f"INSERT INTO reservations({_RESERVATION_COLUMNS}, idempotency_key, "
                "blueprint_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (res.reservation_id, tenant_id, device_id, call_id, _iso(slot_start),
                 party_size, name, phone, res.status, _iso(now), idempotency_key, blueprint_hash),
            )
        return res, True

    def _by_key(self, conn: sqlite3.Connection, key: str) -> Reservation | None:
        row = conn.execute(f"SELECT {_RESERVATION_COLUMNS} FROM reservations "
                           "WHERE idempotency_key = ?", (key,)).fetchone()
        return _reservation(row) if row else None

    def reservations(self, tenant_id: str, day: date) -> list[Reservation]:
        """Bookings of one local day, earliest first."""
        start = datetime.combine(day, datetime.min.time())
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_RESERVATION_COLUMNS} FROM reservations WHERE tenant_id = ? "
                "AND slot_start >= ? AND slot_start < ? ORDER BY slot_start, created_at",
                (tenant_id, _iso(start), _iso(start + timedelta(days=1))),
            ).fetchall()
        return [_reservation(r) for r in rows]

    def record_follow_up(self, *, kind: FollowUpKind, tenant_id: str, device_id: str,
                         call_id: str, phone: str | None, reason: str, summary: dict[str, str],
                         not_before: datetime | None, idempotency_key: str,
                         now: datetime) -> tuple[FollowUp, bool]:
        """Record a promised transfer or callback once per key: (follow-up, created)."""
        with self._transaction() as conn:
            row = conn.execute(f"SELECT {_FOLLOW_UP_COLUMNS} FROM follow_ups "
                               "WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
            if row:
                return _follow_up(row), False
            fu = FollowUp(follow_up_id=new_id("act", int(now.timestamp() * 1000)), kind=kind,
                          tenant_id=tenant_id, device_id=device_id, call_id=call_id, phone=phone,
                          reason=reason, summary=summary, not_before=not_before, created_at=now)
            conn.execute(
                f"INSERT INTO follow_ups({_FOLLOW_UP_COLUMNS}, idempotency_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (fu.follow_up_id, kind, tenant_id, device_id, call_id, phone, reason,
                 json.dumps(summary, sort_keys=True), not_before and _iso(not_before), fu.status,
                 _iso(now), idempotency_key),
            )
        return fu, True

    def follow_ups(self, status: str = "pending", limit: int = 50) -> list[FollowUp]:
        """Follow-ups in a status, oldest first: the staff's to-do list."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_FOLLOW_UP_COLUMNS} FROM follow_ups WHERE status = ? "
                "ORDER BY created_at LIMIT ?", (status, limit),
            ).fetchall()
        return [_follow_up(r) for r in rows]


def _reservation(row: tuple[object, ...]) -> Reservation:
    return Reservation.model_validate(dict(zip(_RESERVATION_COLUMNS.split(", "), row, strict=True)))


def _follow_up(row: tuple[object, ...]) -> FollowUp:
    data = dict(zip(_FOLLOW_UP_COLUMNS.split(", "), row, strict=True))
    data["summary"] = json.loads(str(data["summary"]))
    return FollowUp.model_validate(data)
