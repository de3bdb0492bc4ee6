"""The production backend: PostgreSQL through psycopg 3, the only module using psycopg.

Two kinds of connection. Migrations connect with the configured URL's own user (the
schema owner) under `pg_advisory_xact_lock`, create the application roles and the tables.
The application then connects only as the non-owner app role, which is subject to
FORCE ROW LEVEL SECURITY: each tenant transaction sets `app.tenant_id` with
`set_config(..., true)` (transaction-local), so a connection with no tenant set sees no
tenant rows at all. The fleet scope is `SET LOCAL ROLE <app>_fleet`, a NOLOGIN role whose
policies allow every row; the app role is NOINHERIT, so it has none of the fleet role's
policies until it asks for them explicitly.
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg import errors, pq, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from cloud.db.errors import (
    ConstraintViolation,
    DatabaseError,
    PermissionDenied,
    UniqueViolation,
)
from cloud.db.schema import MIGRATIONS, MIGRATIONS_TABLE, Migration
from cloud.db.sql_text import to_psycopg
from cloud.db.transaction import Row, Scope, Transaction

_ROLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")
_MIGRATION_LOCK = 0x766F786D  # 'voxm': one advisory key for every migrating process
_KEY_LOCKS = 0x766F786B
"""'voxk': the class of `serialize_on` locks. Their two-int4 keys never overlap the one-bigint
key of the migration lock; a hashtext collision only serialises two keys, never breaks one."""


def _translate(exc: psycopg.Error) -> DatabaseError:
    text = str(exc).strip()
    if isinstance(exc, errors.UniqueViolation):
        return UniqueViolation(text)
    if isinstance(exc, errors.InsufficientPrivilege):
        return PermissionDenied(text)
    if isinstance(exc, errors.IntegrityError):
        return ConstraintViolation(text)
    return DatabaseError(text)


def check_role_name(name: str) -> str:
    if not _ROLE_RE.match(name):
        raise DatabaseError(
            f"role name {name!r} must be lower-case letters, digits and '_' (max 51 chars)")
    return name


class _PgTransaction(Transaction):
    dialect = "postgresql"

    def __init__(self, scope: Scope, conn: psycopg.Connection[Any]) -> None:
        super().__init__(scope)
        self._conn = conn

    def serialize_on(self, key: str) -> None:
        """A transaction-scoped advisory lock: released at COMMIT/ROLLBACK, so a crashed
        client never leaves it held; READ COMMITTED then shows the holder's rows to the next."""
        try:
            self._conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                               (_KEY_LOCKS, key))
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    def _adapt(self, value: object) -> object:
        if isinstance(value, dict | list | tuple):
            return Jsonb(value)
        return value

    def _run(self, text: str, params: dict[str, object],
             want_rows: bool) -> tuple[int, list[Row]]:
        try:
            cur = self._conn.execute(to_psycopg(text), params)  # type: ignore[arg-type]
            rows: list[Row] = cur.fetchall() if want_rows and cur.description else []
        except psycopg.Error as exc:
            raise _translate(exc) from exc
        return cur.rowcount, rows


class _Pool:
    """A few idle app-role connections reused across threads; broken ones are dropped."""

    def __init__(self, conninfo: str, size: int) -> None:
        self._conninfo = conninfo
        self._idle: queue.LifoQueue[psycopg.Connection[Row]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Row]]:
        if not self._slots.acquire(timeout=30):
            raise DatabaseError("no database connection free within 30 s")
        conn: psycopg.Connection[Row] | None = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                try:
                    conn = psycopg.connect(self._conninfo, autocommit=True, row_factory=dict_row)
                except psycopg.Error as exc:
                    raise _translate(exc) from exc
            yield conn
        finally:
            if conn is not None:
                idle = conn.info.transaction_status == pq.TransactionStatus.IDLE
                if self._closed or conn.closed or not idle:
                    conn.close()
                else:
                    self._idle.put(conn)
            self._slots.release()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class PostgresDatabase:
    """The cloud database on PostgreSQL, used by the app only through its non-owner role."""

    backend: Literal["postgresql"] = "postgresql"

    def __init__(self, owner_url: str, app_role: str, app_password: str | None = None,
                 pool_size: int = 4, migrate: bool = True) -> None:
        self.app_role = check_role_name(app_role)
        self.fleet_role = f"{app_role}_fleet"
        self._owner_url = owner_url
        self._app_password = app_password
        info = conninfo_to_dict(owner_url)
        info.pop("password", None)
        info["user"] = app_role
        if app_password:
            info["password"] = app_password
        self.app_conninfo = make_conninfo(**info)  # type: ignore[arg-type]
        self._pool = _Pool(self.app_conninfo, pool_size)
        if migrate:
            self.migrate()

    def close(self) -> None:
        self._pool.close()

    @contextlib.contextmanager
    def _scoped(self, scope: Scope, readonly: bool) -> Iterator[Transaction]:
        with self._pool.connection() as conn:
            try:
                with conn.transaction():
                    if readonly:  # before any query, as PostgreSQL requires
                        conn.execute("SET TRANSACTION READ ONLY")
                    if scope.kind == "tenant":
                        conn.execute("SELECT set_config('app.tenant_id', %s, true)",
                                     (scope.tenant_id,))
                    else:
                        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(
                            sql.Identifier(self.fleet_role)))
                    yield _PgTransaction(scope, conn)
            except psycopg.Error as exc:  # at BEGIN/COMMIT (a statement's errors are typed)
                raise _translate(exc) from exc

    def tenant(self, tenant_id: str, *, readonly: bool = False,
               ) -> contextlib.AbstractContextManager[Transaction]:
        """A transaction that sees (and unless `readonly` changes) only `tenant_id`'s rows
        (RLS enforces it)."""
        return self._scoped(Scope("tenant", tenant_id), readonly)

    def fleet(self, *, readonly: bool = False,
              ) -> contextlib.AbstractContextManager[Transaction]:
        """A cross-tenant transaction (dashboard, ingest, auth, ops); never the default."""
        return self._scoped(Scope("fleet"), readonly)

    def _owner(self) -> psycopg.Connection[Row]:
        try:
            return psycopg.connect(self._owner_url, autocommit=True, row_factory=dict_row)
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    def migrate(self, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
        """As the owner: roles, then each pending migration in its own locked transaction."""
        with self._owner() as conn:
            try:
                for m in migrations:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                        self._prepare(conn)
                        done = conn.execute(
                            f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE version = %s",
                            (m.number,)).fetchone()
                        if done:
                            continue
                        for statement in m.postgresql:
                            conn.execute(self._with_roles(conn, statement))  # type: ignore[call-overload]
                        conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} VALUES (%s, %s, %s)",
                                     (m.number, m.name, datetime.now(UTC)))
            except psycopg.Error as exc:
                raise _translate(exc) from exc
        return self.schema_version()

    def _with_roles(self, conn: psycopg.Connection[Row], statement: str) -> str:
        app = sql.Identifier(self.app_role).as_string(conn)
        fleet = sql.Identifier(self.fleet_role).as_string(conn)
        return statement.replace("{app}", app).replace("{fleet}", fleet)

    def _prepare(self, conn: psycopg.Connection[Row]) -> None:
        """The migrations table and the roles exist, the app role is harmless (no superuser,
        no BYPASSRLS, NOINHERIT) and may reach the schema."""
        app, fleet = sql.Identifier(self.app_role), sql.Identifier(self.fleet_role)
        conn.execute(f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version INTEGER PRIMARY "
                     "KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
        roles = {r["rolname"]: r for r in conn.execute(
            "SELECT rolname, rolsuper, rolbypassrls, rolinherit FROM pg_roles "
            "WHERE rolname = ANY(%s)", ([self.app_role, self.fleet_role],)).fetchall()}
        if self.fleet_role not in roles:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOINHERIT NOBYPASSRLS").format(fleet))
        if self.app_role not in roles:
            password = (sql.SQL(" PASSWORD {}").format(sql.Literal(self._app_password))
                        if self._app_password else sql.SQL(""))
            conn.execute(sql.SQL(
                "CREATE ROLE {} LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE "
                "NOBYPASSRLS{}").format(app, password))
        else:
            r = roles[self.app_role]
            if r["rolsuper"] or r["rolbypassrls"] or r["rolinherit"]:
                raise DatabaseError(
                    f"role {self.app_role} must be NOSUPERUSER NOBYPASSRLS NOINHERIT: Row-Level "
                    "Security would not hold for it")
        owner = conn.execute("SELECT current_user AS u").fetchone()
        if owner and owner["u"] == self.app_role:
            raise DatabaseError("migrations must run as the schema owner, not the app role")
        conn.execute(sql.SQL("GRANT {} TO {}").format(fleet, app))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(conn.info.dbname), app))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}, {}").format(app, fleet))
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(
            sql.Identifier(MIGRATIONS_TABLE), app))

    def schema_version(self) -> int:
        """The highest applied migration, read as the app role."""
        with self._pool.connection() as conn:
            try:
                row = conn.execute(f"SELECT MAX(version) AS v FROM {MIGRATIONS_TABLE}").fetchone()
            except psycopg.Error as exc:
                raise _translate(exc) from exc
        return int(row["v"] or 0) if row else 0
