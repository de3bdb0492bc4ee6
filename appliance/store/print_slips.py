"""Slips: kitchen-printer jobs that belong to no order, such as a warm handover summary.

The queue discipline is the one of ticket actions (migrations 4 and 5, see print_queue):
queued once per idempotency key, claimed into in_flight, printing, then succeeded, back to
pending with the error and next attempt time, or dead lettered. These functions run inside
a transaction that `LocalStore` opens.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

from pydantic import BaseModel

from sync.ids import new_id

_COLUMNS = ("slip_id, kind, call_id, idempotency_key, title, lines, status, attempts, last_error, "
            "created_at, failures, next_attempt_at, cuts_before, may_have_printed")
_INSERTED = "slip_id, kind, call_id, idempotency_key, title, lines, status, attempts, last_error, created_at"


class PrintSlip(BaseModel, frozen=True):
    """A queued slip: a big `title` over short `lines`; `attempts` counts claims and
    `failures` the tries that failed while the printer was ready."""

    slip_id: str
    kind: str
    call_id: str | None
    idempotency_key: str
    title: str
    lines: list[str]
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    failures: int = 0
    next_attempt_at: datetime | None = None
    cuts_before: int | None = None
    may_have_printed: bool = False


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


def _slip(row: tuple[object, ...]) -> PrintSlip:
    data = dict(zip(_COLUMNS.split(", "), row, strict=True))
    data["lines"] = json.loads(str(data["lines"]))
    return PrintSlip.model_validate(data)


def queue(conn: sqlite3.Connection, *, kind: str, title: str, lines: list[str],
          idempotency_key: str, now: datetime, call_id: str | None = None) -> tuple[PrintSlip, bool]:
    """Queue a slip once per key: (slip, created); a known key returns the first slip."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM print_slips WHERE idempotency_key = ?",
                       (idempotency_key,)).fetchone()
    if row:
        return _slip(row), False
    slip = PrintSlip(slip_id=new_id("act"), kind=kind, call_id=call_id,
                     idempotency_key=idempotency_key, title=title, lines=lines,
                     status="pending", attempts=0, last_error=None, created_at=now)
    conn.execute(
        f"INSERT INTO print_slips({_INSERTED}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (slip.slip_id, kind, call_id, idempotency_key, title, json.dumps(lines), slip.status,
         0, None, _iso(now), _iso(now)),
    )
    return slip, True


def claim(conn: sqlite3.Connection, now: datetime, limit: int) -> list[PrintSlip]:
    """Move due pending (or abandoned in-flight) slips to in_flight, oldest first, and return
    them; a slip still backing off stays pending."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM print_slips WHERE status IN ('pending', 'in_flight') "
        "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) "
        "ORDER BY created_at, slip_id LIMIT ?", (_iso(now), limit),
    ).fetchall()
    slips = [_slip(r) for r in rows]
    for slip in slips:
        conn.execute("UPDATE print_slips SET status = 'in_flight', attempts = attempts + 1, "
                     "updated_at = ? WHERE slip_id = ?", (_iso(now), slip.slip_id))
    return [s.model_copy(update={"status": "in_flight", "attempts": s.attempts + 1}) for s in slips]


def printing(conn: sqlite3.Connection) -> PrintSlip | None:
    """The slip left in printing by an agent that stopped mid-send, if any."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM print_slips WHERE status = 'printing' "
                       "ORDER BY updated_at LIMIT 1").fetchone()
    return _slip(row) if row else None


def by_status(conn: sqlite3.Connection, status: str, limit: int) -> list[PrintSlip]:
    """Slips in a status, oldest first."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM print_slips WHERE status = ? "
                        "ORDER BY created_at LIMIT ?", (status, limit)).fetchall()
    return [_slip(r) for r in rows]
