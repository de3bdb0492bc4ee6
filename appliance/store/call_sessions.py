"""Call-session metadata (migration 7): the routing decision of each call and its failovers;
migration 8 adds the call's provider use, summed per UTC day for the health report.

Routing chooses engines per call and a provider may die mid-call; staff and the setup UI
need to see which engine heard the caller and why, so the decision is stored as JSON
with the call, and each failover is appended in the same row.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, Field

from appliance.store.local_store import LocalStore
from sync.contracts.messages import ProviderUsage
from sync.ids import id_kind, new_id
from sync.sqlite_schema import immediate, open_wal


class CallSessionRecord(BaseModel):
    """One call's session row as stored."""

    session_id: str
    call_id: str
    tenant_id: str
    device_id: str
    routing: dict[str, Any]
    failovers: list[dict[str, Any]] = Field(default_factory=list)
    usage: list[dict[str, Any]] = Field(default_factory=list)
    started_at: datetime
    updated_at: datetime


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


_COLUMNS = ("session_id, call_id, tenant_id, device_id, routing, failovers, started_at, updated_at, "
            "usage")


class CallSessions:
    """Typed access to the call_sessions table, on a connection of its own."""

    def __init__(self, store: LocalStore) -> None:
        self._conn = open_wal(store.path)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate(self._conn) as conn:
            yield conn

    def open(self, *, call_id: str, tenant_id: str, device_id: str, routing: dict[str, Any],
             now: datetime) -> CallSessionRecord:
        """Start the session of `call_id` (a `ses_` id); a second open of the same call
        returns the first row unchanged."""
        if not call_id:
            raise ValueError("call_id must not be empty")
        sid = new_id("ses")
        with self._transaction() as conn:
            conn.execute(
                f"INSERT OR IGNORE INTO call_sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, '[]', ?, ?, '[]')",
                (sid, call_id, tenant_id, device_id, json.dumps(routing), _iso(now), _iso(now)))
        found = self.get(call_id)
        assert found is not None
        return found

    def set_routing(self, session_id: str, routing: dict[str, Any], now: datetime) -> None:
        """Replace the decision (re-routed once the line's noise was heard)."""
        id_kind(session_id)
        with self._transaction() as conn:
            conn.execute("UPDATE call_sessions SET routing = ?, updated_at = ? WHERE session_id = ?",
                         (json.dumps(routing), _iso(now), session_id))

    def add_failover(self, session_id: str, failover: dict[str, Any], now: datetime) -> None:
        """Append one failover to the session's list (read-modify-write in one transaction)."""
        if id_kind(session_id) != "ses":
            raise ValueError(f"{session_id!r} is not a session id")
        with self._transaction() as conn:
            row = conn.execute("SELECT failovers FROM call_sessions WHERE session_id = ?",
                               (session_id,)).fetchone()
            if row is None:
                raise KeyError(f"no call session {session_id}")
            items = json.loads(row[0]) + [{**failover, "at": _iso(now)}]
            conn.execute("UPDATE call_sessions SET failovers = ?, updated_at = ? WHERE session_id = ?",
                         (json.dumps(items), _iso(now), session_id))

    def add_usage(self, session_id: str, *, provider: str, kind: str, seconds: float = 0.0,
                  tokens: int = 0, cost_cents: float = 0.0, now: datetime) -> None:
        """Add one use of `provider` to the session's totals (one entry per provider and kind)."""
        if id_kind(session_id) != "ses":
            raise ValueError(f"{session_id!r} is not a session id")
        if seconds < 0 or tokens < 0 or cost_cents < 0:
            raise ValueError("usage amounts must not be negative")
        with self._transaction() as conn:
            row = conn.execute("SELECT usage FROM call_sessions WHERE session_id = ?",
                               (session_id,)).fetchone()
            if row is None:
                raise KeyError(f"no call session {session_id}")
            items: list[dict[str, Any]] = json.loads(row[0])
            entry = next((u for u in items if (u["provider"], u["kind"]) == (provider, kind)), None)
            if entry is None:
                entry = {"provider": provider, "kind": kind, "seconds": 0.0, "tokens": 0,
                         "est_cost_cents": 0.0}
                items.append(entry)
            entry["seconds"] += seconds
            entry["tokens"] += tokens
            entry["est_cost_cents"] += cost_cents
            conn.execute("UPDATE call_sessions SET usage = ?, updated_at = ? WHERE session_id = ?",
                         (json.dumps(items), _iso(now), session_id))

    def get(self, call_id: str) -> CallSessionRecord | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM call_sessions WHERE call_id = ?",
                                     (call_id,)).fetchone()
        return None if row is None else _record(row)

    def recent(self, limit: int = 20) -> list[CallSessionRecord]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM call_sessions ORDER BY started_at DESC LIMIT ?",
                (limit,)).fetchall()
        return [_record(r) for r in rows]


def day_usage(conn: sqlite3.Connection, day: date) -> list[ProviderUsage]:
    """Provider use of the calls started on UTC `day`, summed per provider and kind."""
    start = datetime.combine(day, time.min, UTC)
    rows = conn.execute("SELECT usage FROM call_sessions WHERE started_at >= ? AND started_at < ?",
                        (_iso(start), _iso(start + timedelta(days=1)))).fetchall()
    totals: dict[tuple[str, str], ProviderUsage] = {}
    for (text,) in rows:
        for u in json.loads(text):
            key = (u["provider"], u["kind"])
            old = totals.get(key) or ProviderUsage(day=day, provider=key[0], kind=key[1])
            totals[key] = old.model_copy(update={
                "seconds": round(old.seconds + u["seconds"], 3), "tokens": old.tokens + u["tokens"],
                "est_cost_cents": round(old.est_cost_cents + u["est_cost_cents"], 4)})
    return [totals[k] for k in sorted(totals)]


def _record(row: tuple[Any, ...]) -> CallSessionRecord:
    return CallSessionRecord(session_id=row[0], call_id=row[1], tenant_id=row[2], device_id=row[3],
                             routing=json.loads(row[4]), failovers=json.loads(row[5]),
                             started_at=datetime.fromisoformat(row[6]),
                             updated_at=datetime.fromisoformat(row[7]), usage=json.loads(row[8]))
