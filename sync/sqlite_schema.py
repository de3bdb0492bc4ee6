"""SQLite plumbing shared by the box store and the one-node cloud database.

Both open their file the same way (WAL, full sync, autocommit so transactions are
explicit) and move their schema only by numbered migrations.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path


def open_wal(path: Path) -> sqlite3.Connection:
    """An autocommit connection in WAL mode, safe to share across the process's threads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken at BEGIN so two writers never deadlock on upgrade."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def apply_migrations(conn: sqlite3.Connection, migrations: Sequence[str]) -> int:
    """Apply pending migrations, one transaction each; return the schema version.

    The applied check runs inside the write lock, so two processes opening the same
    file at once cannot both apply a migration.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
    for number, script in enumerate(migrations, start=1):
        with immediate(conn):
            if conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (number,)).fetchone():
                continue
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations(version) VALUES (?)", (number,))
    return len(migrations)
