"""The single-node backend: one SQLite file in WAL mode, the only module using sqlite3 here.

SQLite has no row-level security; tenant isolation is the scope check of `Transaction`
plus repositories filtering by `:tenant_id`. One write connection guarded by a lock
(FastAPI serves from a thread pool); every write transaction starts with BEGIN IMMEDIATE
so writers never deadlock upgrading a read lock. Read-only scopes run on separate
`query_only` connections with a deferred BEGIN: a WAL snapshot that never waits for the
writer, also not for another process (or another `SqliteDatabase`) writing the same file.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from cloud.db.errors import (
    ConstraintViolation,
    DatabaseError,
    PermissionDenied,
    UniqueViolation,
)
from cloud.db.schema import MIGRATIONS, MIGRATIONS_TABLE, Migration
from cloud.db.transaction import Row, Scope, Transaction, adapt_json, iso
from sync.sqlite_schema import immediate, open_wal


def _translate(exc: sqlite3.Error) -> DatabaseError:
    text = str(exc)
    if text.startswith("permission denied"):
        return PermissionDenied(text)
    if isinstance(exc, sqlite3.IntegrityError):
        if text.startswith("UNIQUE constraint failed"):
            return UniqueViolation(text)
        return ConstraintViolation(text)
    return DatabaseError(text)


class _SqliteTransaction(Transaction):
    dialect = "sqlite"

    def __init__(self, scope: Scope, conn: sqlite3.Connection) -> None:
        super().__init__(scope)
        self._conn = conn

    def serialize_on(self, key: str) -> None:
        """Nothing to do: BEGIN IMMEDIATE already holds the file's one write lock."""

    def _adapt(self, value: object) -> object:
        if isinstance(value, datetime):
            return iso(value)
        return adapt_json(value)

    def _run(self, sql: str, params: dict[str, object],
             want_rows: bool) -> tuple[int, list[Row]]:
        try:
            cur = self._conn.execute(sql, params)
            rows = [dict(r) for r in cur.fetchall()] if want_rows else []
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        return cur.rowcount, rows


class _SnapshotReaders:
    """Read-only connections to the file, one per concurrent reader, reused when idle."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._idle: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._closed = False

    def _open(self) -> sqlite3.Connection:
        conn = open_wal(self._path)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only = ON")  # a write in a read scope is an error
        return conn

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A deferred transaction: its snapshot is taken at the first read, no lock held."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._open()
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")  # ends the read; nothing was written
        finally:
            if self._closed or conn.in_transaction:  # a failed COMMIT: never reuse it
                conn.close()
            else:
                self._idle.put(conn)

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class SqliteDatabase:
    """The cloud database in one SQLite file (the demo and single-node default)."""

    backend: Literal["sqlite"] = "sqlite"

    def __init__(self, path: Path, migrate: bool = True) -> None:
        self.path = path
        self._conn = open_wal(path)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._readers = _SnapshotReaders(path)
        if migrate:
            self.migrate()

    def close(self) -> None:
        self._readers.close()
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _scoped(self, scope: Scope, readonly: bool) -> Iterator[Transaction]:
        if readonly:
            try:
                with self._readers.snapshot() as conn:
                    yield _SqliteTransaction(scope, conn)
            except sqlite3.Error as exc:  # at BEGIN/COMMIT (a statement's errors are typed)
                raise _translate(exc) from exc
            return
        with self._lock, immediate(self._conn) as conn:
            yield _SqliteTransaction(scope, conn)

    def tenant(self, tenant_id: str, *, readonly: bool = False,
               ) -> contextlib.AbstractContextManager[Transaction]:
        """A transaction that sees (and unless `readonly` changes) only `tenant_id`'s rows."""
        return self._scoped(Scope("tenant", tenant_id), readonly)

    def fleet(self, *, readonly: bool = False,
              ) -> contextlib.AbstractContextManager[Transaction]:
        """A cross-tenant transaction (dashboard, ingest, auth, ops); never the default."""
        return self._scoped(Scope("fleet"), readonly)

    def migrate(self, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
        """Apply pending migrations, each in its own BEGIN IMMEDIATE (the lock); the version."""
        with self._lock:
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at TEXT NOT NULL)")
            for m in migrations:
                with immediate(self._conn) as conn:
                    done = conn.execute(f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE version = ?",
                                        (m.number,)).fetchone()
                    if done:
                        continue
                    for statement in m.sqlite:
                        conn.execute(statement)
                    conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} VALUES (?, ?, ?)",
                                 (m.number, m.name, iso(datetime.now(UTC))))
        return self.schema_version()

    def schema_version(self) -> int:
        with self._lock:
            row = self._conn.execute(f"SELECT MAX(version) FROM {MIGRATIONS_TABLE}").fetchone()
        return int(row[0] or 0)
