"""The box's side of reconciliation and outbox upkeep: day figures, day resync, pruning.

Days are UTC calendar days of the order's (or event's) creation time, the same on box
and cloud. Resync only clears acks, so events go out again in seq order and the cloud's
idempotent ingest keeps what it has and fills what it lost. Pruning deletes acked rows
only: an event the cloud has not confirmed stays, whatever its age.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta

from sync.contracts.messages import DaySummary, day_digest


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


def _bounds(day: date) -> tuple[str, str]:
    """ISO text range of one UTC day, for the created_at columns (stored as UTC ISO)."""
    return day.isoformat(), (day + timedelta(days=1)).isoformat()


def day_summary(conn: sqlite3.Connection, day: date) -> DaySummary:
    """Order count, printed tickets, digest, cancellations and undrained events of `day`.

    Status is the order body's (submitted | cancelled; a superseded order's body says
    cancelled), the same field the cloud holds, so equal digests mean equal records.
    """
    start, end = _bounds(day)
    rows = conn.execute(
        "SELECT o.order_id, json_extract(o.body, '$.status'), EXISTS (SELECT 1 FROM actions a WHERE a.order_id = "
        "o.order_id AND a.kind = 'print_ticket' AND a.status = 'succeeded') FROM orders o "
        "WHERE o.created_at >= ? AND o.created_at < ?", (start, end)).fetchall()
    pending = conn.execute(
        "SELECT COUNT(*) FROM outbox WHERE acked_at IS NULL AND created_at >= ? "
        "AND created_at < ?", (start, end)).fetchone()[0]
    return DaySummary(
        day=day, orders=len(rows), tickets_printed=sum(1 for r in rows if r[2]),
        digest=day_digest((r[0], r[1]) for r in rows),
        cancelled_order_ids=sorted(r[0] for r in rows if r[1] == "cancelled"),
        pending_events=int(pending),
    )


def recent_days(now: datetime, count: int) -> list[date]:
    """Today (UTC) and the `count - 1` days before it, oldest first."""
    today = now.astimezone(UTC).date()
    return [today - timedelta(days=n) for n in reversed(range(count))]


def resync_day(conn: sqlite3.Connection, day: date) -> int:
    """Mark the outbox events of `day` unacked again; returns how many will be resent."""
    start, end = _bounds(day)
    cur = conn.execute("UPDATE outbox SET acked_at = NULL WHERE acked_at IS NOT NULL "
                       "AND created_at >= ? AND created_at < ?", (start, end))
    return cur.rowcount


def events_on(conn: sqlite3.Connection, day: date) -> int:
    """Outbox rows (acked or not) still held for `day`."""
    start, end = _bounds(day)
    return int(conn.execute("SELECT COUNT(*) FROM outbox WHERE created_at >= ? "
                            "AND created_at < ?", (start, end)).fetchone()[0])


def prune_acked(conn: sqlite3.Connection, older_than: datetime) -> int:
    """Delete acked outbox rows created before `older_than`; unacked rows are never touched."""
    cur = conn.execute("DELETE FROM outbox WHERE acked_at IS NOT NULL AND created_at < ?",
                       (_iso(older_than),))
    return cur.rowcount


def oldest_unacked_age_s(conn: sqlite3.Connection, now: datetime) -> float | None:
    """Seconds since the oldest unacked event was written; None when the outbox is drained."""
    row = conn.execute("SELECT MIN(created_at) FROM outbox WHERE acked_at IS NULL").fetchone()
    if row[0] is None:
        return None
    return max(0.0, (now - datetime.fromisoformat(row[0])).total_seconds())
