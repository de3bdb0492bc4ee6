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

from appliance.store import (
    order_commands,
    print_queue,
    print_slips,
    print_tickets,
    transcript_retention,
)
from appliance.store.migrations import migrate
from appliance.store.order_commands import CommandResult
from appliance.store.print_queue import JobKind, PrintQueueSummary
from appliance.store.print_slips import PrintSlip
from appliance.store.print_tickets import PrintJob, TicketMark
from sync.contracts.errors import Correlation
from sync.contracts.events import (
    EventData,
    EventEnvelope,
    OrderSubmitted,
    TicketFailed,
    TicketPrinted,
)
from sync.contracts.order import Order, OrderLine
from sync.ids import new_id
from sync.sqlite_schema import immediate, open_wal

__all__ = ["CommandResult", "LocalStore", "PrintJob", "PrintQueueSummary", "TicketMark", "Turn"]


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

    # -- the print queues (state machine in print_queue) ------------------------------------

    def claim_print_jobs(self, now: datetime, limit: int = 10) -> list[PrintJob]:
        """Move due pending (or abandoned in-flight) tickets to in_flight and return them,
        oldest first; none while a ticket or slip is still printing (see print_queue)."""
        with self._transaction() as conn:
            return print_tickets.claim(conn, now, limit)

    def printing_ticket(self) -> PrintJob | None:
        """The ticket an agent left between 'bytes may be sent' and resolved, if any."""
        with self._lock:
            return print_tickets.printing(self._conn)

    def printing_slip(self) -> PrintSlip | None:
        """The slip an agent left between 'bytes may be sent' and resolved, if any."""
        with self._lock:
            return print_slips.printing(self._conn)

    def begin_print(self, kind: JobKind, job_id: str, cuts_before: int | None,
                    now: datetime) -> bool:
        """The commit point's first half: printing + the cut count, before any byte is sent;
        False if the job was cancelled since it was claimed (then send nothing)."""
        with self._transaction() as conn:
            return print_queue.begin(conn, kind, job_id, cuts_before, now)

    def complete_print(self, job: PrintJob, printer: str, now: datetime) -> bool:
        """Mark a ticket printed and queue ticket.printed; False if it was already done."""
        with self._transaction() as conn:
            if not print_queue.succeed(conn, "ticket", job.action_id, now):
                return False
            self._append_event(
                conn, job.order,
                TicketPrinted(order_id=job.order.order_id, action_id=job.action_id,
                              printer=printer, printed_at=now),
                now, action_id=job.action_id,
            )
        return True

    def release_print(self, kind: JobKind, job_id: str, *, error: str | None, failed: bool,
                      next_attempt_at: datetime | None = None, may_have_printed: bool = False,
                      now: datetime) -> None:
        """Back to pending; `failed` counts a failure and sets the persisted next attempt
        time, otherwise the job is only held (printer not ready, deferred)."""
        with self._transaction() as conn:
            print_queue.release(conn, kind, job_id, error=error, failed=failed,
                                next_attempt_at=next_attempt_at,
                                may_have_printed=may_have_printed, now=now)

    def fail_print(self, job: PrintJob, error: str, now: datetime) -> None:
        """Return a ticket to pending with the error kept, without counting a failure."""
        self.release_print("ticket", job.action_id, error=error, failed=False, now=now)

    def dead_letter_print(self, job: PrintJob, printer: str, error: str, now: datetime) -> bool:
        """Give up on a ticket and queue ticket.failed so the cloud sees it; False if it had
        already left the queue."""
        with self._transaction() as conn:
            if not print_queue.dead_letter(conn, "ticket", job.action_id, error, now):
                return False
            self._append_event(
                conn, job.order,
                TicketFailed(order_id=job.order.order_id, action_id=job.action_id,
                             printer=printer, failures=job.failures + 1, error=error,
                             failed_at=now),
                now, action_id=job.action_id,
            )
        return True

    def queue_slip(self, *, kind: str, title: str, lines: list[str], idempotency_key: str,
                   now: datetime, call_id: str | None = None) -> tuple[PrintSlip, bool]:
        """Queue a non-order slip for the kitchen printer once per key: (slip, created)."""
        with self._transaction() as conn:
            return print_slips.queue(conn, kind=kind, title=title, lines=lines,
                                     idempotency_key=idempotency_key, now=now, call_id=call_id)

    def claim_slips(self, now: datetime, limit: int = 10) -> list[PrintSlip]:
        """Move due pending (or abandoned in-flight) slips to in_flight and return them;
        none while a ticket or slip is still printing."""
        with self._transaction() as conn:
            if print_queue.any_printing(conn):
                return []
            return print_slips.claim(conn, now, limit)

    def complete_slip(self, slip: PrintSlip, now: datetime) -> bool:
        """Mark a slip printed; False if it was already done."""
        with self._transaction() as conn:
            return print_queue.succeed(conn, "slip", slip.slip_id, now)

    def fail_slip(self, slip: PrintSlip, error: str, now: datetime) -> None:
        """Return a slip to pending with the error kept, without counting a failure."""
        self.release_print("slip", slip.slip_id, error=error, failed=False, now=now)

    def dead_letter_slip(self, slip: PrintSlip, error: str, now: datetime) -> bool:
        """Give up on a slip (it stays listed as dead_lettered)."""
        with self._transaction() as conn:
            return print_queue.dead_letter(conn, "slip", slip.slip_id, error, now)

    def slips(self, status: str = "pending", limit: int = 50) -> list[PrintSlip]:
        """Slips in a status, oldest first."""
        with self._lock:
            return print_slips.by_status(self._conn, status, limit)

    def record_printer_condition(self, printer: str, condition: str, detail: str | None,
                                 now: datetime) -> bool:
        """Keep the printer's condition for health reports; True if it changed."""
        with self._transaction() as conn:
            return print_queue.record_condition(conn, printer, condition, detail, now)

    def print_queue_summary(self) -> PrintQueueSummary:
        """Printer condition and queue counts, for the sync link's health report."""
        with self._lock:
            return print_queue.summary(self._conn)

    # -- platform commands (applied once per command id, see order_commands) ----------------

    def _emit(self, conn: sqlite3.Connection, order: Order, data: EventData, now: datetime,
              action_id: str | None) -> None:
        self._append_event(conn, order, data, now, action_id=action_id)

    def cancel_order(self, order_id: str, command_id: str, reason: str,
                     now: datetime) -> CommandResult:
        """Cancel an order: an unsent ticket never prints; a printed one gets a CANCELLED
        ticket; order.cancelled is queued in the same transaction."""
        with self._transaction() as conn:
            return order_commands.cancel(conn, self._emit, order_id, command_id, reason, now)

    def reprint_ticket(self, order_id: str, command_id: str, now: datetime) -> CommandResult:
        """Queue the order's ticket again, headed REPRINT (action key cmd:<command_id>)."""
        with self._transaction() as conn:
            return order_commands.reprint(conn, self._emit, order_id, command_id, now)

    def supersede_order(self, order_id: str, replacement: Order, command_id: str,
                        now: datetime) -> CommandResult:
        """Replace an order under the same number; its ticket prints headed AMENDED."""
        with self._transaction() as conn:
            return order_commands.supersede(conn, self._emit, order_id, replacement,
                                            command_id, now)

    def action_status(self, order_id: str, kind: str = "print_ticket") -> str | None:
        """Status of the order's first action of `kind` (its original ticket)."""
        rows = self._query(
            "SELECT status FROM actions WHERE order_id = ? AND kind = ? ORDER BY rowid LIMIT 1",
            (order_id, kind),
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

    def mark_acked_many(self, event_ids: list[str], now: datetime) -> None:
        """`mark_acked` for a batch of acks in one transaction (one fsync, not one each)."""
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE outbox SET acked_at = ? WHERE event_id = ? AND acked_at IS NULL",
                [(_iso(now), event_id) for event_id in event_ids],
            )

    def outbox_depth(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM outbox WHERE acked_at IS NULL")[0][0])

    def event_acked(self, event_id: str) -> bool:
        rows = self._query("SELECT acked_at FROM outbox WHERE event_id = ?", (event_id,))
        return bool(rows and rows[0][0])

    def orders(self, limit: int = 50) -> list[Order]:
        rows = self._query(
            "SELECT body FROM orders ORDER BY json_extract(body, '$.number') DESC, rowid DESC "
            "LIMIT ?", (limit,)
        )
        return [Order.model_validate_json(b) for (b,) in rows]

    def order_for_call(self, call_id: str) -> Order | None:
        rows = self._query("SELECT body FROM orders WHERE call_id = ? "
                           "ORDER BY status = 'superseded', rowid DESC", (call_id,))
        return Order.model_validate_json(rows[0][0]) if rows else None

    def record_turn(self, call_id: str, speaker: str, text: str, at: datetime,
                    latency_ms: float | None = None) -> bool:
        """Keep one turn of a call; False (nothing stored) when the tenant's policy in force
        keeps transcripts 0 days."""
        with self._transaction() as conn:
            if not transcript_retention.keeps_turns(conn):
                return False
            conn.execute(
                "INSERT INTO call_turns(call_id, at, speaker, text, latency_ms) "
                "VALUES (?, ?, ?, ?, ?)", (call_id, _iso(at), speaker, text, latency_ms))
        return True

    def prune_turns(self, now: datetime) -> tuple[int, datetime | None]:
        """Delete turns past the policy's `transcripts_days`: (rows, cutoff or None if unlimited)."""
        with self._transaction() as conn:
            return transcript_retention.prune_turns(conn, now)

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

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads only: no write lock is taken, and in WAL a reader never
        waits for another process's writer (safe on the event loop, e.g. at each INVITE)."""
        with self._lock:
            yield self._conn

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One write transaction for store modules beside this class (desired_state, ...)."""
        return self._transaction()
