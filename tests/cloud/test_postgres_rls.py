"""Row-Level Security checked directly at PostgreSQL, as the app role, with no layer between.

The layer's own scope check is bypassed on purpose: these statements name no tenant,
so only FORCE ROW LEVEL SECURITY and the grants stand between tenant A and tenant B.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from cloud.control.audit import ChangeContext
from cloud.control.tenants import TenantCreate, create_tenant
from cloud.control.tokens import TokenCreate, issue_token
from cloud.db import Database, open_database
from cloud.db.schema import TENANT_TABLES
from tests.cloud.conftest import PgServer

CTX = ChangeContext(actor="test", request_id=None, now=datetime(2026, 11, 25, tzinfo=UTC))


@pytest.fixture
def pg_db(pg_server: PgServer) -> Database:
    db = open_database(pg_server.url, app_role=pg_server.app_role)
    yield db  # type: ignore[misc]
    db.close()


def _two_tenants(db: Database) -> tuple[str, str]:
    a = create_tenant(db, CTX, TenantCreate(name="A")).tenant_id
    b = create_tenant(db, CTX, TenantCreate(name="B")).tenant_id
    with db.tenant(b) as tx:
        issue_token(tx, CTX, TokenCreate(name="b", scopes=["tenant:read"]))
    return a, b


def _as_tenant(conn: psycopg.Connection[tuple[object, ...]], tenant_id: str) -> None:
    conn.execute("SELECT set_config('app.tenant_id', %s, false)", (tenant_id,))


def test_no_tenant_set_sees_nothing(pg_server: PgServer, pg_db: Database) -> None:
    _two_tenants(pg_db)
    with pg_server.connect_as(pg_server.app_role) as conn:
        for table in TENANT_TABLES:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row == (0,), table
    with psycopg.connect(pg_server.url) as owner:
        assert owner.execute("SELECT count(*) FROM tenants").fetchone()[0] >= 2  # type: ignore[index]


def test_tenant_a_cannot_read_or_write_tenant_b(pg_server: PgServer, pg_db: Database) -> None:
    a, b = _two_tenants(pg_db)
    with pg_server.connect_as(pg_server.app_role) as conn:
        _as_tenant(conn, a)
        assert conn.execute("SELECT tenant_id FROM tenants").fetchall() == [(a,)]
        assert conn.execute("SELECT count(*) FROM api_tokens").fetchone() == (0,)
        seen_audit = conn.execute("SELECT DISTINCT tenant_id FROM audit_log").fetchall()
        assert seen_audit == [(a,)]
        changed = conn.execute("UPDATE tenants SET name = 'owned' WHERE tenant_id = %s", (b,))
        assert changed.rowcount == 0
        assert conn.execute("UPDATE api_tokens SET revoked_at = now()").rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("INSERT INTO audit_log (entry_id, tenant_id, actor, action, resource, "
                         "at) VALUES ('x', %s, 'a', 'forge', 'r', now())", (b,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("UPDATE tenants SET tenant_id = %s WHERE tenant_id = %s", (b + "x", a))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM tenants")
    with pg_db.tenant(b) as tx:
        assert tx.fetch_one("SELECT name FROM tenants WHERE tenant_id = :tenant_id") == {
            "name": "B"}


def test_the_app_role_is_not_the_owner_and_cannot_bypass(pg_server: PgServer,
                                                         pg_db: Database) -> None:
    with pg_db.tenant("any") as tx:
        who = tx.fetch_one("SELECT current_user AS u, session_user AS s")
    assert who == {"u": pg_server.app_role, "s": pg_server.app_role}
    with psycopg.connect(pg_server.url) as owner:
        role = owner.execute(
            "SELECT rolsuper, rolbypassrls, rolinherit, rolcreaterole FROM pg_roles "
            "WHERE rolname = %s", (pg_server.app_role,)).fetchone()
        assert role == (False, False, False, False)
        tables = owner.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity, "
            "pg_get_userbyid(relowner) FROM pg_class WHERE relname = ANY(%s)",
            (list(TENANT_TABLES),)).fetchall()
    assert sorted(t[0] for t in tables) == sorted(TENANT_TABLES)
    for name, enabled, forced, table_owner in tables:
        assert enabled and forced, name
        assert table_owner not in (pg_server.app_role, pg_server.fleet_role), name


def test_the_fleet_scope_needs_the_explicit_role_switch(pg_server: PgServer,
                                                        pg_db: Database) -> None:
    a, b = _two_tenants(pg_db)
    with pg_db.fleet() as tx:
        rows = tx.fetch_all("SELECT tenant_id FROM tenants WHERE tenant_id IN (:a, :b)",
                            {"a": a, "b": b})
        assert tx.fetch_one("SELECT current_user AS u") == {"u": pg_server.fleet_role}
    assert sorted(r["tenant_id"] for r in rows) == sorted([a, b])
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        pg_server.connect_as(pg_server.fleet_role)  # NOLOGIN: reached only by SET ROLE


def test_audit_log_refuses_change_even_for_the_owner(pg_server: PgServer,
                                                     pg_db: Database) -> None:
    a, _ = _two_tenants(pg_db)
    with pg_server.connect_as(pg_server.app_role) as conn:
        _as_tenant(conn, a)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE audit_log SET actor = 'mallory'")
    with psycopg.connect(pg_server.url, autocommit=True) as owner:
        for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log",
                          "TRUNCATE audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                owner.execute(statement)
        assert owner.execute("SELECT count(*) FROM audit_log WHERE actor = 'mallory'"
                             ).fetchone() == (0,)
