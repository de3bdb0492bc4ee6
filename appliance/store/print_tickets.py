"""Kitchen tickets: print actions of an order, with the header a ticket carries.

An order's first ticket is queued by order.submit; platform commands add more (REPRINT,
AMENDED, CANCELLED), each its own action keyed `cmd:<command_id>`, so the kitchen sees
them in the order they were asked for. These functions run inside a transaction that
`LocalStore` opens; the state machine is print_queue's.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from appliance.store import print_queue
from sync.contracts.order import Order
from sync.ids import new_id


class TicketMark(StrEnum):
    """Why a ticket is not the order's plain first ticket; printed as its header."""

    REPRINT = "reprint"
    AMENDED = "amended"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class PrintJob:
    """A kitchen-ticket action claimed by the print agent (or left printing by one).

    `failures` counts failed tries while the printer was ready; `cuts_before` is the
    printer's cut count recorded before the bytes went out (None: no counter, or not sent);
    `may_have_printed` says a retry may duplicate a ticket that already came out."""

    action_id: str
    idempotency_key: str
    attempts: int
    order: Order
    failures: int = 0
    cuts_before: int | None = None
    mark: TicketMark | None = None
    may_have_printed: bool = False
    status: str = "in_flight"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


_SELECT = (
    "SELECT a.action_id, a.idempotency_key, a.attempts, a.failures, a.cuts_before, a.mark, "
    "a.may_have_printed, a.status, o.body FROM actions a JOIN orders o USING(order_id) "
    "WHERE a.kind = 'print_ticket' "
)


def _job(row: tuple[Any, ...]) -> PrintJob:
    action_id, key, attempts, failures, cuts, mark, unsure, status, body = row
    return PrintJob(action_id, key, attempts, Order.model_validate_json(body), failures, cuts,
                    TicketMark(mark) if mark else None, bool(unsure), status)


def claim(conn: sqlite3.Connection, now: datetime, limit: int) -> list[PrintJob]:
    """Move due pending (or abandoned in-flight) tickets to in_flight, oldest first.

    Nothing is claimed while a ticket or slip is printing: its resolution reads the cut
    counter, which must not have moved for anything else."""
    if print_queue.any_printing(conn):
        return []
    rows = conn.execute(
        _SELECT + "AND a.status IN ('pending', 'in_flight') "
        "AND (a.next_attempt_at IS NULL OR a.next_attempt_at <= ?) "
        "ORDER BY a.created_at, a.rowid LIMIT ?", (_iso(now), limit),
    ).fetchall()
    jobs = [_job(r) for r in rows]
    for job in jobs:
        conn.execute("UPDATE actions SET status = 'in_flight', attempts = attempts + 1, "
                     "updated_at = ? WHERE action_id = ?", (_iso(now), job.action_id))
    return [PrintJob(j.action_id, j.idempotency_key, j.attempts + 1, j.order, j.failures, None,
                     j.mark, j.may_have_printed, "in_flight") for j in jobs]


def printing(conn: sqlite3.Connection) -> PrintJob | None:
    """The ticket left in printing by an agent that stopped mid-send, if any."""
    row = conn.execute(_SELECT + "AND a.status = 'printing' ORDER BY a.updated_at LIMIT 1"
                       ).fetchone()
    return _job(row) if row else None


def add(conn: sqlite3.Connection, order_id: str, idempotency_key: str, mark: TicketMark | None,
        now: datetime) -> str:
    """Queue one more ticket of an order; returns its action id."""
    action_id = new_id("act")
    conn.execute(
        "INSERT INTO actions(action_id, order_id, kind, idempotency_key, status, mark, "
        "created_at, updated_at) VALUES (?, ?, 'print_ticket', ?, 'pending', ?, ?, ?)",
        (action_id, order_id, idempotency_key, mark.value if mark else None, _iso(now), _iso(now)),
    )
    return action_id


def cancel_unprinted(conn: sqlite3.Connection, order_id: str, why: str, now: datetime) -> int:
    """Cancel the order's tickets that have not been sent; returns how many."""
    cur = conn.execute(
        "UPDATE actions SET status = 'cancelled', last_error = ?, next_attempt_at = NULL, "
        "updated_at = ? WHERE order_id = ? AND kind = 'print_ticket' "
        "AND status IN ('pending', 'in_flight', 'dead_lettered')", (why, _iso(now), order_id),
    )
    return cur.rowcount


def any_sent(conn: sqlite3.Connection, order_id: str) -> bool:
    """Whether a ticket of the order came out, or may have (it is printing right now)."""
    return bool(conn.execute(
        "SELECT EXISTS(SELECT 1 FROM actions WHERE order_id = ? AND kind = 'print_ticket' "
        "AND status IN ('succeeded', 'printing'))", (order_id,)).fetchone()[0])
