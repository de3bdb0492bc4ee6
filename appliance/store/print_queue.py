"""The states a kitchen ticket or slip goes through on its way to paper, shared by both queues.

    pending -> in_flight (claimed, nothing sent) -> printing (cut count recorded, bytes may
    be on their way) -> succeeded | pending (retry, with failures and next attempt time
    persisted) | dead_lettered; a ticket may also be cancelled before it is sent.

`printing` is the commit protocol: it is written, together with the printer's cut count
read just before, in the transaction that precedes the first byte, and left only by the
print agent's resolution (counter advanced -> succeeded, else back to pending). Only one
job is ever `printing`, so a counter that moved belongs to it. These functions run inside
a transaction that `LocalStore` opens.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

JobKind = Literal["ticket", "slip"]

_TABLES: dict[str, tuple[str, str]] = {
    "ticket": ("actions", "action_id"),
    "slip": ("print_slips", "slip_id"),
}


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


def _table(kind: JobKind) -> tuple[str, str]:
    return _TABLES[kind]


def any_printing(conn: sqlite3.Connection) -> bool:
    """True while a ticket or slip is between 'bytes may be sent' and resolved."""
    return bool(conn.execute(
        "SELECT EXISTS(SELECT 1 FROM actions WHERE kind = 'print_ticket' AND status = 'printing') "
        "OR EXISTS(SELECT 1 FROM print_slips WHERE status = 'printing')").fetchone()[0])


def begin(conn: sqlite3.Connection, kind: JobKind, job_id: str, cuts_before: int | None,
          now: datetime) -> bool:
    """Claimed -> printing with the cut count read just before; False if the job is no longer
    claimed (a platform command cancelled it meanwhile): then nothing may be sent."""
    table, key = _table(kind)
    cur = conn.execute(
        f"UPDATE {table} SET status = 'printing', cuts_before = ?, updated_at = ? "
        f"WHERE {key} = ? AND status IN ('in_flight', 'printing')",
        (cuts_before, _iso(now), job_id),
    )
    return cur.rowcount > 0


def succeed(conn: sqlite3.Connection, kind: JobKind, job_id: str, now: datetime) -> bool:
    """Mark printed and clear the retry state; False if it already was (or was given up)."""
    table, key = _table(kind)
    cur = conn.execute(
        f"UPDATE {table} SET status = 'succeeded', last_error = NULL, next_attempt_at = NULL, "
        f"cuts_before = NULL, may_have_printed = 0, updated_at = ? "
        f"WHERE {key} = ? AND status IN ('pending', 'in_flight', 'printing')",
        (_iso(now), job_id),
    )
    return cur.rowcount > 0


def release(conn: sqlite3.Connection, kind: JobKind, job_id: str, *, error: str | None,
            failed: bool, next_attempt_at: datetime | None, may_have_printed: bool,
            now: datetime) -> None:
    """Back to pending. `failed` counts a failure (and `next_attempt_at` delays the next
    try); a held job (printer not ready, deferred) keeps its count and delay."""
    table, key = _table(kind)
    conn.execute(
        f"UPDATE {table} SET status = 'pending', cuts_before = NULL, updated_at = ?, "
        f"last_error = COALESCE(?, last_error), failures = failures + ?, "
        f"next_attempt_at = CASE WHEN ? THEN ? ELSE next_attempt_at END, "
        f"may_have_printed = MAX(may_have_printed, ?) "
        f"WHERE {key} = ? AND status IN ('in_flight', 'printing')",
        (_iso(now), error, int(failed), int(failed),
         _iso(next_attempt_at) if next_attempt_at else None, int(may_have_printed), job_id),
    )


def dead_letter(conn: sqlite3.Connection, kind: JobKind, job_id: str, error: str,
                now: datetime) -> bool:
    """Give up on a job: it stays visible (setup UI, health) and is never claimed again."""
    table, key = _table(kind)
    cur = conn.execute(
        f"UPDATE {table} SET status = 'dead_lettered', last_error = ?, failures = failures + 1, "
        f"next_attempt_at = NULL, cuts_before = NULL, updated_at = ? "
        f"WHERE {key} = ? AND status IN ('pending', 'in_flight', 'printing')",
        (error, _iso(now), job_id),
    )
    return cur.rowcount > 0


class PrinterStatusRecord(BaseModel, frozen=True):
    """The printer's condition as the print agent last saw it change."""

    printer: str
    condition: str
    detail: str | None
    changed_at: datetime


class PrintQueueSummary(BaseModel, frozen=True):
    """What the sync link reports about printing: the printer and the queues behind it."""

    printer: PrinterStatusRecord | None = Field(description="None until the edge ran once")
    tickets_pending: int = Field(description="waiting or claimed, nothing sent")
    tickets_printing: int = Field(description="0 or 1: sent or being sent, not yet settled")
    tickets_failing: int = Field(
        description="of pending + printing, those that failed at least once (not extra)")
    tickets_dead_lettered: int
    slips_pending: int = Field(description="waiting, claimed or printing")
    slips_dead_lettered: int
    oldest_pending_at: datetime | None = Field(description="creation of the oldest unprinted")
    last_error: str | None = Field(description="newest error of an unprinted ticket")


def record_condition(conn: sqlite3.Connection, printer: str, condition: str,
                     detail: str | None, now: datetime) -> bool:
    """Store the printer's condition if it changed; True if it did."""
    row = conn.execute("SELECT condition, detail FROM printer_state WHERE printer = ?",
                       (printer,)).fetchone()
    if row and row[0] == condition:
        return False
    conn.execute(
        "INSERT INTO printer_state(printer, condition, detail, changed_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(printer) DO UPDATE SET condition = excluded.condition, "
        "detail = excluded.detail, changed_at = excluded.changed_at",
        (printer, condition, detail, _iso(now)),
    )
    return True


def summary(conn: sqlite3.Connection) -> PrintQueueSummary:
    """Counts by state, the oldest waiting ticket and the newest error, in one read."""
    t = dict(conn.execute(
        "SELECT status, COUNT(*) FROM actions WHERE kind = 'print_ticket' GROUP BY status"
    ).fetchall())
    s = dict(conn.execute("SELECT status, COUNT(*) FROM print_slips GROUP BY status").fetchall())
    failing, oldest = conn.execute(
        "SELECT COUNT(*) FILTER (WHERE failures > 0), MIN(created_at) FROM actions "
        "WHERE kind = 'print_ticket' AND status IN ('pending', 'in_flight', 'printing')"
    ).fetchone()
    error = conn.execute(
        "SELECT last_error FROM actions WHERE kind = 'print_ticket' AND last_error IS NOT NULL "
        "AND status != 'succeeded' ORDER BY updated_at DESC LIMIT 1").fetchone()
    state = conn.execute("SELECT printer, condition, detail, changed_at FROM printer_state "
                         "ORDER BY changed_at DESC LIMIT 1").fetchone()
    return PrintQueueSummary(
        printer=PrinterStatusRecord(printer=state[0], condition=state[1], detail=state[2],
                                    changed_at=datetime.fromisoformat(state[3]))
        if state else None,
        tickets_pending=t.get("pending", 0) + t.get("in_flight", 0),
        tickets_printing=t.get("printing", 0),
        tickets_failing=int(failing or 0),
        tickets_dead_lettered=t.get("dead_lettered", 0),
        slips_pending=s.get("pending", 0) + s.get("in_flight", 0) + s.get("printing", 0),
        slips_dead_lettered=s.get("dead_lettered", 0),
        oldest_pending_at=datetime.fromisoformat(oldest) if oldest else None,
        last_error=error[0] if error else None,
    )
