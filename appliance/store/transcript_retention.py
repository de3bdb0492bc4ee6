"""How long the box keeps what was said on a call: the tenant policy's `transcripts_days`
in the desired state in force (edge-state 1.1; None keeps turns, 0 stores none).

Only call_turns (caller and agent text) is a transcript. Orders, their outbox events,
follow-ups and call-session metadata are business records and are never touched here.
The retention is read with json_extract from the stored desired body, not by parsing the
whole document, because `record_turn` asks at every turn and the body may carry a menu.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

_DAYS = ("SELECT json_extract(body, '$.policy.transcripts_days') FROM desired_state "
         "ORDER BY version DESC LIMIT 1")


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


def transcripts_days(conn: sqlite3.Connection) -> int | None:
    """Days turns are kept under the desired state in force; None when nothing limits it."""
    row = conn.execute(_DAYS).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def keeps_turns(conn: sqlite3.Connection) -> bool:
    """False when the tenant's policy says turns are not stored at all (0 days)."""
    return transcripts_days(conn) != 0


def prune_turns(conn: sqlite3.Connection, now: datetime) -> tuple[int, datetime | None]:
    """Delete turns older than the retention in force: (rows deleted, the cutoff used)."""
    days = transcripts_days(conn)
    if days is None:
        return 0, None
    cutoff = now - timedelta(days=days)
    cur = conn.execute("DELETE FROM call_turns WHERE at < ?", (_iso(cutoff),))
    return cur.rowcount, cutoff
