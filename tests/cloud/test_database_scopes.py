"""Read-only scopes and per-key serialisation of the cloud database layer, on both backends.

A read-only scope must never wait for a writer (on SQLite the control plane reads edge
state while it holds its own write transaction on the same file), sees only committed
rows, and refuses writes. `serialize_on` makes read-then-insert transactions on one key
run one after another with real threads on real connections.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from cloud.control.audit import ChangeContext
from cloud.control.tenants import TenantCreate, create_tenant
from cloud.db import Database, DatabaseError, UniqueViolation, open_database
from sync.contracts.messages import DesiredState
from sync.ids import new_id

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CTX = ChangeContext(actor="test", request_id="req-1", now=NOW)
NAME = "SELECT name FROM tenants WHERE tenant_id = :tenant_id"


@pytest.fixture
def second(db_url: str, request: pytest.FixtureRequest) -> Iterator[Database]:
    """Another `Database` on the same file/server: another replica, or the control plane
    beside CloudDb in one process. Pool of 8 so 8 threads hold 8 connections at once."""
    role = (request.getfixturevalue("pg_server").app_role
            if db_url.startswith("postgresql") else "voxeron_app")
    db = open_database(db_url, app_role=role, pool_size=8)
    try:
        yield db
    finally:
        db.close()


def _tenant(db: Database) -> str:
    return create_tenant(db, CTX, TenantCreate(name="Before")).tenant_id


def test_a_readonly_scope_reads_committed_rows_while_a_writer_holds_its_transaction(
        database: Database, second: Database) -> None:
    tenant_id = _tenant(database)
    with second.tenant(tenant_id) as writer:
        writer.execute("UPDATE tenants SET name = 'After' WHERE tenant_id = :tenant_id")
        # The write lock is held (on SQLite: the file's one writer); a read must not wait.
        with database.tenant(tenant_id, readonly=True) as tx:
            assert tx.fetch_one(NAME) == {"name": "Before"}
        with database.fleet(readonly=True) as tx:
            assert tx.fetch_one("SELECT name FROM tenants WHERE tenant_id = :t",
                                {"t": tenant_id}) == {"name": "Before"}
        with second.tenant(tenant_id, readonly=True) as tx:  # its own Database, too
            assert tx.fetch_one(NAME) == {"name": "Before"}
    with database.tenant(tenant_id, readonly=True) as tx:
        assert tx.fetch_one(NAME) == {"name": "After"}


def test_a_readonly_scope_refuses_writes_and_changes_nothing(database: Database) -> None:
    tenant_id = _tenant(database)
    with pytest.raises(DatabaseError), database.tenant(tenant_id, readonly=True) as tx:
        tx.execute("UPDATE tenants SET name = 'Nope' WHERE tenant_id = :tenant_id")
    with pytest.raises(DatabaseError), database.fleet(readonly=True) as tx:
        tx.execute("UPDATE tenants SET name = 'Nope' WHERE tenant_id = :t", {"t": tenant_id})
    with database.tenant(tenant_id) as tx:
        assert tx.fetch_one(NAME) == {"name": "Before"}
    with database.tenant(tenant_id, readonly=True) as tx:  # the scope is usable again
        assert tx.fetch_one(NAME) == {"name": "Before"}


def test_a_readonly_tenant_scope_is_still_scoped(database: Database) -> None:
    a, b = _tenant(database), _tenant(database)
    with database.tenant(a, readonly=True) as tx:
        rows = tx.fetch_all("SELECT tenant_id FROM tenants WHERE tenant_id = :tenant_id")
    assert rows == [{"tenant_id": a}]
    with pytest.raises(DatabaseError), database.tenant(a, readonly=True) as tx:
        tx.fetch_all("SELECT name FROM tenants WHERE tenant_id = :tenant_id", {"tenant_id": b})


def _next_numbers(db: Database, tenant_id: str, key: str, n: int,
                  serialise: bool) -> tuple[list[int], list[Exception]]:
    """`n` threads each read MAX(version) + 1 of one device and insert it, all at once."""
    start = threading.Barrier(n)
    got: list[int] = []
    failed: list[Exception] = []
    lock = threading.Lock()

    def one() -> None:
        start.wait()
        try:
            with db.tenant(tenant_id) as tx:
                if serialise:
                    tx.serialize_on(key)
                row = tx.fetch_one(
                    "SELECT COALESCE(MAX(version), 0) + 1 AS next FROM desired_states "
                    "WHERE tenant_id = :tenant_id AND device_id = :device_id",
                    {"device_id": key})
                version = int(row["next"]) if row else 1
                # A real document, already published: the shared database's downlink
                # scans (unpublished_desired) of other tests never see these rows.
                body = DesiredState(tenant_id=tenant_id, device_id=key, version=version,
                                    issued_at=NOW).model_dump_json()
                tx.execute(
                    "INSERT INTO desired_states(tenant_id, device_id, version, body, "
                    "created_at, published_at) VALUES (:tenant_id, :device_id, :version, "
                    ":body, :now, :now)",
                    {"device_id": key, "version": version, "body": body,
                     "now": NOW.isoformat()})
        except Exception as exc:  # collected: the assertion below says which
            with lock:
                failed.append(exc)
            return
        with lock:
            got.append(version)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(got), failed


def test_serialize_on_gives_concurrent_read_then_insert_distinct_numbers(
        second: Database) -> None:
    tenant_id = _tenant(second)
    got, failed = _next_numbers(second, tenant_id, new_id("dev"), 8, serialise=True)
    assert failed == []
    assert got == list(range(1, 9))


def test_without_serialize_on_postgresql_collides(second: Database) -> None:
    """The control for the test above: on PostgreSQL (READ COMMITTED) the same race
    without the lock does collide, so the test above can fail. SQLite's BEGIN IMMEDIATE
    serialises every writer anyway."""
    tenant_id = _tenant(second)
    collided = False
    for _ in range(20):  # a race: a few rounds make a collision all but certain
        got, failed = _next_numbers(second, tenant_id, new_id("dev"), 8, serialise=False)
        if second.backend == "sqlite":
            assert failed == [] and got == list(range(1, 9))
            return
        assert all(isinstance(e, UniqueViolation) for e in failed)
        if failed:
            collided = True
            break
    assert collided
