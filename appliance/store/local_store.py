"""Local store of the box: orders, actions, outbox and call turns in one SQLite file (WAL).

Every process of the box opens its own `LocalStore` on the same file; SQLite's locking is
the queue discipline. Writes that belong together (an order, its actions and its outbox
event) happen in one transaction, so a crash leaves all or nothing.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from appliance.store import print_slips
from appliance.store.migrations import migrate
from appliance.store.print_slips import PrintSlip
from sync.contracts.errors import Correlation
from sync.contracts.events import EventData, EventEnvelope, OrderSubmitted, TicketPrinted
from sync.contracts.order import Order, OrderLine
from sync.ids import new_id
from sync.sqlite_schema import immediate, open_wal


@dataclass(frozen=True)
class PrintJob:
    """A kitchen-ticket action claimed by the print agent."""

    action_id: str
    idempotency_key: str
    attempts: int
    order: Order


@dataclass(frozen=True)
class Turn:
    """One utterance of a call, as said by the agent or as recognised from the caller."""

    call_id: str
    at: datetime
    speaker: str
    text: str
    latency_ms: float | None


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


class LocalStore:
    """Typed access to the box's SQLite file; safe to open from several processes."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        conn = open_wal(self.path)
        migrate(conn)
        self._conn = conn
        # One connection serves the event loop and worker threads of a process; the lock
        # keeps a statement from one thread out of another thread's open transaction.
        self._lock = threading.RLock()
        self.db = sqlite_utils.Database(conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate(self._conn) as conn:
            yield conn

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:  # type: ignore[type-arg]
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _write(self, sql: str, params: tuple[object, ...] = ()) -> None:
        with self._lock:
            self._conn.execute(sql, params)

    def _append_event(self, conn: sqlite3.Connection, order: Order, data: EventData,
                      now: datetime, action_id: str | None = None) -> None:
        event_id = new_id("evt")
        # seq is the outbox rowid; it is assigned on insert, so write a placeholder first.
        cur = conn.execute(
            "INSERT INTO outbox(event_id, body, created_at) VALUES (?, '', ?)", (event_id, _iso(now))
        )
        seq = int(cur.lastrowid or 0)
        envelope = EventEnvelope(
            event_id=event_id, tenant_id=order.tenant_id, device_id=order.device_id, seq=seq,
            occurred_at=now,
            correlation=Correlation(
                tenant_id=order.tenant_id, device_id=order.device_id, call_id=order.call_id,
                order_id=order.order_id, action_id=action_id, event_id=event_id,
            ),
            data=data,
        )
        conn.execute("UPDATE outbox SET body = ? WHERE seq = ?", (envelope.model_dump_json(), seq))

    def submit_order(
        self, *, tenant_id: str, device_id: str, call_id: str, caller: str | None,
        lines: list[OrderLine], currency: str, blueprint_hash: str, idempotency_key: str,
        now: datetime,
    ) -> tuple[Order, bool]:
        """Write order + kitchen-ticket action + order.submitted event atomically.

        Returns (order, created). A second submit with the same idempotency key returns
        the first order and writes nothing: a retried submit never makes a second order.
        """
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT o.body FROM submissions s JOIN orders o USING(order_id) "
                "WHERE s.idempotency_key = ?", (idempotency_key,),
            ).fetchone()
            if row:
                return Order.model_validate_json(row[0]), False
            number = conn.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM orders").fetchone()[0]
            order = Order(
                order_id=new_id("ord"), tenant_id=tenant_id, device_id=device_id, call_id=call_id,
                number=number, caller=caller, lines=lines, currency=currency,
                total_cents=sum(li.unit_price_cents * li.quantity for li in lines),
                blueprint_hash=blueprint_hash, created_at=now,
            )
            conn.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (order.order_id, tenant_id, device_id, call_id, number, order.status,
                 order.model_dump_json(), _iso(now)),
            )
            conn.execute("INSERT INTO submissions VALUES (?, ?)", (idempotency_key, order.order_id))
            conn.execute(
                "INSERT INTO actions(action_id, order_id, kind, idempotency_key, status, "
                "created_at, updated_at) VALUES (?, ?, 'print_ticket', ?, 'pending', ?, ?)",
                (new_id("act"), order.order_id, f"{idempotency_key}:ticket", _iso(now), _iso(now)),
            )
            self._append_event(conn, order, OrderSubmitted(order=order), now)
        return order, True

    def claim_print_jobs(self, now: datetime, limit: int = 10) -> list[PrintJob]:
        """Move pending (or abandoned in-flight) ticket actions to in_flight and return them.

        An in_flight action found here was claimed by a print agent that died; printing is
        idempotent per key downstream, so claiming it again is safe.
        """
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT a.action_id, a.idempotency_key, a.attempts, o.body FROM actions a "
                "JOIN orders o USING(order_id) WHERE a.kind = 'print_ticket' "
                "AND a.status IN ('pending', 'in_flight') ORDER BY o.number LIMIT ?", (limit,),
            ).fetchall()
            for action_id, *_ in rows:
                conn.execute(
                    "UPDATE actions SET status = 'in_flight', attempts = attempts + 1, "
                    "updated_at = ? WHERE action_id = ?", (_iso(now), action_id),
                )
        return [PrintJob(a, k, n + 1, Order.model_validate_json(b)) for a, k, n, b in rows]

    def complete_print(self, job: PrintJob, printer: str, now: datetime) -> bool:
        """Mark a ticket printed and queue ticket.printed; False if it was already done."""
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE actions SET status = 'succeeded', updated_at = ?, last_error = NULL "
                "WHERE action_id = ? AND status != 'succeeded'", (_iso(now), job.action_id),
            )
            if cur.rowcount == 0:
                return False
            self._append_event(
                conn, job.order,
                TicketPrinted(order_id=job.order.order_id, action_id=job.action_id,
                              printer=printer, printed_at=now),
                now, action_id=job.action_id,
            )
        return True

    def fail_print(self, job: PrintJob, error: str, now: datetime) -> None:
        """Return a ticket to pending with the error kept for the setup UI and alerts."""
        self._write(
            "UPDATE actions SET status = 'pending', last_error = ?, updated_at = ? "
            "WHERE action_id = ? AND status = 'in_flight'", (error, _iso(now), job.action_id),
        )

    def queue_slip(self, *, kind: str, title: str, lines: list[str], idempotency_key: str,
                   now: datetime, call_id: str | None = None) -> tuple[PrintSlip, bool]:
        """Queue a non-order slip for the kitchen printer once per key: (slip, created)."""
        with self._transaction() as conn:
            return print_slips.queue(conn, kind=kind, title=title, lines=lines,
                                     idempotency_key=idempotency_key, now=now, call_id=call_id)

    def claim_slips(self, now: datetime, limit: int = 10) -> list[PrintSlip]:
        """Move pending (or abandoned in-flight) slips to in_flight and return them."""
        with self._transaction() as conn:
            return print_slips.claim(conn, now, limit)

    def complete_slip(self, slip: PrintSlip, now: datetime) -> bool:
        """Mark a slip printed; False if it was already done."""
        with self._transaction() as conn:
            return print_slips.complete(conn, slip.slip_id, now)

    def fail_slip(self, slip: PrintSlip, error: str, now: datetime) -> None:
        """Return a slip to pending with the error kept for the setup UI and alerts."""
        with self._transaction() as conn:
            print_slips.fail(conn, slip.slip_id, error, now)

    def slips(self, status: str = "pending", limit: int = 50) -> list[PrintSlip]:
        """Slips in a status, oldest first."""
        with self._lock:
            return print_slips.by_status(self._conn, status, limit)

    def action_status(self, order_id: str, kind: str = "print_ticket") -> str | None:
        rows = self._query(
            "SELECT status FROM actions WHERE order_id = ? AND kind = ?", (order_id, kind)
        )
        return rows[0][0] if rows else None

    def pending_events(self, limit: int = 50) -> list[EventEnvelope]:
        """Unacknowledged outbox events, oldest first: the drain order of the sync link."""
        rows = self._query(
            "SELECT body FROM outbox WHERE acked_at IS NULL ORDER BY seq LIMIT ?", (limit,)
        )
        return [EventEnvelope.model_validate_json(b) for (b,) in rows]

    def mark_acked(self, event_id: str, now: datetime) -> None:
        self._write(
            "UPDATE outbox SET acked_at = ? WHERE event_id = ? AND acked_at IS NULL",
            (_iso(now), event_id),
        )

    def outbox_depth(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM outbox WHERE acked_at IS NULL")[0][0])

    def event_acked(self, event_id: str) -> bool:
        rows = self._query("SELECT acked_at FROM outbox WHERE event_id = ?", (event_id,))
        return bool(rows and rows[0][0])

    def orders(self, limit: int = 50) -> list[Order]:
        rows = self._query(
            "SELECT body FROM orders ORDER BY number DESC LIMIT ?", (limit,)
        )
        return [Order.model_validate_json(b) for (b,) in rows]

    def order_for_call(self, call_id: str) -> Order | None:
        rows = self._query("SELECT body FROM orders WHERE call_id = ?", (call_id,))
        return Order.model_validate_json(rows[0][0]) if rows else None

    def record_turn(self, call_id: str, speaker: str, text: str, at: datetime,
                    latency_ms: float | None = None) -> None:
        self._write(
            "INSERT INTO call_turns(call_id, at, speaker, text, latency_ms) VALUES (?, ?, ?, ?, ?)",
            (call_id, _iso(at), speaker, text, latency_ms),
        )

    def turns(self, call_id: str) -> list[Turn]:
        rows = self._query(
            "SELECT call_id, at, speaker, text, latency_ms FROM call_turns WHERE call_id = ? "
            "ORDER BY id", (call_id,),
        )
        return [Turn(c, datetime.fromisoformat(a), s, t, lat) for c, a, s, t, lat in rows]

    def calls(self, limit: int = 20) -> list[str]:
        rows = self._query(
            "SELECT call_id FROM call_turns GROUP BY call_id ORDER BY MAX(id) DESC LIMIT ?", (limit,)
        )
        return [r[0] for r in rows]
