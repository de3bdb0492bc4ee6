"""The box's copy of the cloud's desired state, and the outcome of every cloud command.

Functions take the store's connection inside a transaction the caller holds, so checking
a version and writing it (or a command's outcome) is one atomic step even with several
box processes on the file. The highest applied version is in force; a rejected version
never replaces it, and any version at or below the highest one seen is stale.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sync.contracts.errors import ErrorEnvelope
from sync.contracts.messages import CommandOutcome, DesiredState

DesiredVerdict = Literal["applied", "rejected", "stale"]


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class AppliedDesired:
    """The desired state in force, with the hash of the blueprint it composes to."""

    desired: DesiredState
    blueprint_hash: str | None
    applied_at: datetime


@dataclass(frozen=True)
class Rejection:
    """A desired version the box refused, and why."""

    version: int
    error: ErrorEnvelope


def highest_seen(conn: sqlite3.Connection) -> int:
    """The highest version applied or rejected; 0 before the first."""
    row = conn.execute(
        "SELECT MAX(v) FROM (SELECT MAX(version) AS v FROM desired_state "
        "UNION ALL SELECT MAX(version) FROM desired_rejections)").fetchone()
    return int(row[0] or 0)


def apply(conn: sqlite3.Connection, desired: DesiredState, blueprint_hash: str | None,
          now: datetime) -> DesiredVerdict:
    """Put `desired` in force unless a version at or above it was seen already."""
    if desired.version <= highest_seen(conn):
        return "stale"
    conn.execute("INSERT INTO desired_state VALUES (?, ?, ?, ?)",
                 (desired.version, desired.model_dump_json(), blueprint_hash, _iso(now)))
    return "applied"


def reject(conn: sqlite3.Connection, version: int, error: ErrorEnvelope,
           now: datetime) -> DesiredVerdict:
    """Record that `version` was refused; what is in force stays in force."""
    if version <= highest_seen(conn):
        return "stale"
    conn.execute("INSERT INTO desired_rejections VALUES (?, ?, ?)",
                 (version, error.model_dump_json(), _iso(now)))
    return "rejected"


def in_force(conn: sqlite3.Connection) -> AppliedDesired | None:
    row = conn.execute("SELECT body, blueprint_hash, applied_at FROM desired_state "
                       "ORDER BY version DESC LIMIT 1").fetchone()
    if row is None:
        return None
    return AppliedDesired(DesiredState.model_validate_json(row[0]), row[1],
                          datetime.fromisoformat(row[2]))


def latest_rejection(conn: sqlite3.Connection) -> Rejection | None:
    """The newest rejection if it is newer than what is in force (else it is history)."""
    row = conn.execute(
        "SELECT version, error FROM desired_rejections WHERE version > "
        "(SELECT COALESCE(MAX(version), 0) FROM desired_state) ORDER BY version DESC LIMIT 1",
    ).fetchone()
    return Rejection(row[0], ErrorEnvelope.model_validate_json(row[1])) if row else None


def outcome(conn: sqlite3.Connection, command_id: str) -> CommandOutcome | None:
    """The recorded outcome of a command, None if it was never applied here."""
    row = conn.execute("SELECT command_id, kind, status, reason, at FROM command_outcomes "
                       "WHERE command_id = ?", (command_id,)).fetchone()
    return _outcome(row) if row else None


def record_outcome(conn: sqlite3.Connection, result: CommandOutcome,
                   order_id: str | None) -> bool:
    """Keep the first outcome of a command; False if it had one already."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO command_outcomes(command_id, kind, order_id, status, reason, at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (result.command_id, result.kind, order_id, result.status, result.reason, _iso(result.at)))
    return cur.rowcount == 1


def unreported_outcomes(conn: sqlite3.Connection, limit: int = 100) -> list[CommandOutcome]:
    rows = conn.execute("SELECT command_id, kind, status, reason, at FROM command_outcomes "
                        "WHERE reported_at IS NULL ORDER BY at LIMIT ?", (limit,)).fetchall()
    return [_outcome(r) for r in rows]


def mark_reported(conn: sqlite3.Connection, command_ids: list[str], now: datetime) -> None:
    conn.executemany("UPDATE command_outcomes SET reported_at = ? WHERE command_id = ?",
                     [(_iso(now), c) for c in command_ids])


def unreport(conn: sqlite3.Connection, command_id: str) -> None:
    """Report this outcome again (a redelivered command: the cloud may have missed it)."""
    conn.execute("UPDATE command_outcomes SET reported_at = NULL WHERE command_id = ?",
                 (command_id,))


def _outcome(row: tuple[str, str, str, str | None, str]) -> CommandOutcome:
    command_id, kind, status, reason, at = row
    return CommandOutcome.model_validate({"command_id": command_id, "kind": kind,
                                          "status": status, "reason": reason, "at": at})
