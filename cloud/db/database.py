"""`open_database(url)`: the cloud's one database layer, on SQLite or PostgreSQL.

Every cloud repository is written against `Database` and `Transaction` only; the backend
is chosen by the URL's scheme: `sqlite:///relative/path`, `sqlite:////absolute/path`, or
`postgresql://owner@host:port/dbname` (the app then connects as `app_role`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Literal, Protocol

from cloud.db.errors import DatabaseUrlError
from cloud.db.transaction import Transaction

Backend = Literal["sqlite", "postgresql"]


class Database(Protocol):
    """What repositories may ask of a database: scoped transactions, nothing else.

    `readonly=True` asks for a read that never waits for a writer: a WAL snapshot on its
    own connection on SQLite (a write transaction holds the file's one write lock, and
    the control plane reads edge state while it holds one), a READ ONLY transaction on
    PostgreSQL. A write in it fails with `DatabaseError`.
    """

    @property
    def backend(self) -> Backend: ...

    def tenant(self, tenant_id: str, *, readonly: bool = False,
               ) -> contextlib.AbstractContextManager[Transaction]: ...

    def fleet(self, *, readonly: bool = False,
              ) -> contextlib.AbstractContextManager[Transaction]: ...

    def schema_version(self) -> int: ...

    def close(self) -> None: ...


def open_database(url: str, *, app_role: str = "voxeron_app", app_password: str | None = None,
                  pool_size: int = 4, migrate: bool = True) -> Database:
    """Open (and by default migrate) the database at `url`; DatabaseUrlError if unusable."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path:
            raise DatabaseUrlError("sqlite URL needs a file path: sqlite:///path/to/file")
        from cloud.db.sqlite_backend import SqliteDatabase

        return SqliteDatabase(Path(path), migrate=migrate)
    if url.startswith(("postgresql://", "postgres://")):
        from cloud.db.postgres_backend import PostgresDatabase

        return PostgresDatabase(url, app_role, app_password, pool_size=pool_size,
                                migrate=migrate)
    raise DatabaseUrlError(
        f"unsupported database URL {url.split('://')[0]!r}: use sqlite:///path or "
        "postgresql://user@host/db")
