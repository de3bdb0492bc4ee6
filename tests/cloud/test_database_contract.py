"""One contract for the cloud database layer, run on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud.control.audit import ChangeContext, record, tenant_entries
from cloud.control.tenants import TenantCreate, create_tenant, existing_tenant, list_tenants
from cloud.control.tokens import TokenCreate, hash_secret, issue_token, revoke_token, verify_secret
from cloud.db import Database, PermissionDenied, TenantScopeError, UniqueViolation, open_database
from cloud.db.schema import MIGRATIONS
from sync.ids import new_id

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CTX = ChangeContext(actor="test", request_id="req-1", now=NOW)


def _tenant(db: Database, name: str = "Pizzeria") -> str:
    return create_tenant(db, CTX, TenantCreate(name=name)).tenant_id


def test_migrations_are_idempotent(database: Database, db_url: str,
                                   request: pytest.FixtureRequest) -> None:
    assert database.schema_version() == len(MIGRATIONS)
    role = (request.getfixturevalue("pg_server").app_role
            if db_url.startswith("postgresql") else "voxeron_app")
    again = open_database(db_url, app_role=role)
    try:
        assert again.schema_version() == len(MIGRATIONS)
        tenant_id = _tenant(again)
    finally:
        again.close()
    assert any(t.tenant_id == tenant_id for t in list_tenants(database))


def test_a_tenant_scope_reads_only_its_own_rows(database: Database) -> None:
    a, b = _tenant(database, "A"), _tenant(database, "B")
    with database.tenant(a) as tx:
        rows = tx.fetch_all("SELECT tenant_id, name FROM tenants WHERE tenant_id = :tenant_id")
    assert rows == [{"tenant_id": a, "name": "A"}]
    with database.fleet() as tx:
        both = tx.fetch_all("SELECT tenant_id FROM tenants WHERE tenant_id IN (:a, :b) "
                            "ORDER BY tenant_id", {"a": a, "b": b})
    assert [r["tenant_id"] for r in both] == sorted([a, b])


def test_the_layer_refuses_tenant_tables_without_the_tenant(database: Database) -> None:
    a, b = _tenant(database), _tenant(database)
    with pytest.raises(TenantScopeError), database.tenant(a) as tx:
        tx.fetch_all("SELECT * FROM tenants")
    with pytest.raises(TenantScopeError), database.tenant(a) as tx:
        tx.execute("UPDATE tenants SET name = 'x' WHERE tenant_id = :tenant_id",
                   {"tenant_id": b})
    with pytest.raises(TenantScopeError):
        database.tenant("")
    with database.tenant(b) as tx:
        assert tx.fetch_one("SELECT name FROM tenants WHERE tenant_id = :tenant_id") == {
            "name": "Pizzeria"}


def test_a_failed_transaction_changes_nothing(database: Database) -> None:
    a = _tenant(database)
    with pytest.raises(UniqueViolation), database.tenant(a) as tx:
        tx.execute("UPDATE tenants SET name = 'changed' WHERE tenant_id = :tenant_id")
        record(tx, CTX, "tenant.update", f"tenants/{a}", None, {"name": "changed"})
        tx.execute("INSERT INTO tenants (tenant_id, name, tier, region, quotas, retention, "
                   "created_at, updated_at) VALUES (:tenant_id, 'dup', 'standard', 'eu', :q, "
                   ":q, :now, :now)", {"q": {}, "now": NOW})
    with existing_tenant(database, a) as tx:
        assert tx.fetch_one("SELECT name FROM tenants WHERE tenant_id = :tenant_id") == {
            "name": "Pizzeria"}
        assert [e.action for e in tenant_entries(tx)] == ["tenant.create"]


def test_audit_log_is_append_only(database: Database) -> None:
    a = _tenant(database)
    for statement in ("UPDATE audit_log SET actor = 'mallory' WHERE tenant_id = :tenant_id",
                      "DELETE FROM audit_log WHERE tenant_id = :tenant_id"):
        with pytest.raises(PermissionDenied), database.tenant(a) as tx:
            tx.execute(statement)
    with pytest.raises(PermissionDenied), database.fleet() as tx:
        tx.execute("DELETE FROM audit_log")
    with database.tenant(a) as tx:
        entries = tenant_entries(tx)
    assert [(e.actor, e.action, e.request_id) for e in entries] == [
        ("test", "tenant.create", "req-1")]
    assert entries[0].before is None and entries[0].after and entries[0].after["name"] == "Pizzeria"


def test_tokens_are_hashed_expire_and_revoke(database: Database) -> None:
    a = _tenant(database)
    with database.tenant(a) as tx:
        token = issue_token(tx, CTX, TokenCreate(name="pos", scopes=["tenant:read"],
                                                 expires_in_days=1))
    with database.fleet() as tx:
        stored = tx.fetch_one("SELECT secret_sha256 FROM api_tokens WHERE token_id = :t",
                              {"t": token.token_id})
        assert stored == {"secret_sha256": hash_secret(token.secret)}
        assert token.secret not in str(tx.fetch_all("SELECT * FROM api_tokens"))
        assert verify_secret(tx, token.secret, NOW)[0] == "ok"
        assert verify_secret(tx, token.secret, NOW + timedelta(days=1))[0] == "expired"
        assert verify_secret(tx, token.secret + "x", NOW)[0] == "unknown"
        assert verify_secret(tx, "not-a-token", NOW)[0] == "unknown"
        used = tx.fetch_one("SELECT last_used_at FROM api_tokens WHERE token_id = :t",
                            {"t": token.token_id})
    assert used and used["last_used_at"] is not None
    with database.tenant(a) as tx:
        revoke_token(tx, CTX, token.token_id)
    with database.fleet() as tx:
        assert verify_secret(tx, token.secret, NOW)[0] == "revoked"


def test_one_tenant_cannot_revoke_anothers_token(database: Database) -> None:
    a, b = _tenant(database), _tenant(database)
    with database.tenant(b) as tx:
        token = issue_token(tx, CTX, TokenCreate(name="b", scopes=["tenant:write"]))
    with pytest.raises(Exception, match="no such token"), database.tenant(a) as tx:
        revoke_token(tx, CTX, token.token_id)
    with database.fleet() as tx:
        assert verify_secret(tx, token.secret, NOW)[0] == "ok"


def test_an_ops_token_lives_outside_every_tenant(database: Database) -> None:
    a = _tenant(database)
    with database.fleet() as tx:
        ops = issue_token(tx, CTX, TokenCreate(name="ops", scopes=["ops:*"]))
    with database.tenant(a) as tx:
        seen = tx.fetch_all("SELECT token_id FROM api_tokens WHERE tenant_id = :tenant_id")
    assert ops.token_id not in {r["token_id"] for r in seen}
    assert ops.tenant_id is None and ops.scopes == ["ops:*"]
    assert new_id("ten") != a


def test_one_placeholder_style_on_both_backends(database: Database) -> None:
    with database.fleet() as tx:
        row = tx.fetch_one("SELECT :x AS v, 'a%:b' AS p WHERE 'b5' LIKE 'b%'", {"x": "5"})
    assert row == {"v": "5", "p": "a%:b"}
