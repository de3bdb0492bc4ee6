"""Desired-state versions under concurrency, and the hot cache after every new version.

Both backends: eight concurrent `add_desired` for one device from two CloudDb instances
(two replicas, real threads on real connections) get versions 1..8 and none fails. With
a real redis-server: a desired state read through the cache (as the dashboard's device
page does) is never served stale after a promotion, a flag change or a raw PUT, nor
after a replica that only shares the Redis writes a version.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud.control.cache import HotCache
from cloud.control.db import CloudDb
from sync.contracts.messages import DesiredState
from sync.ids import new_id
from tests.cloud.control_client import (
    OPS_AUTH,
    app_role,
    approved_version,
    control_app,
    control_config,
    enrol,
    new_tenant,
    overlay,
    promote,
)
from tests.cloud.test_cache import RedisProcess

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)


def _role(db_url: str, request: pytest.FixtureRequest) -> str:
    return (request.getfixturevalue("pg_server").app_role
            if db_url.startswith("postgresql") else "voxeron_app")


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisProcess]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = RedisProcess(port, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def replicas(db_url: str, request: pytest.FixtureRequest) -> Iterator[list[CloudDb]]:
    role = _role(db_url, request)
    dbs = [CloudDb.open(db_url, app_role=role, pool_size=8) for _ in range(2)]
    try:
        yield dbs
    finally:
        for db in dbs:
            db.close()


def _build(tenant_id: str, device_id: str) -> object:
    def build(version: int, _tx: object) -> DesiredState:
        return DesiredState(tenant_id=tenant_id, device_id=device_id, version=version,
                            issued_at=NOW, flags={"answer_calls": True})
    return build


def test_concurrent_add_desired_for_one_device_loses_no_version(
        replicas: list[CloudDb]) -> None:
    tenant_id, device_id = new_id("ten"), "box-race"
    start = threading.Barrier(8)
    versions: list[int] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def add(db: CloudDb) -> None:
        start.wait()
        try:
            desired = db.add_desired(tenant_id, device_id,
                                     _build(tenant_id, device_id), NOW)  # type: ignore[arg-type]
        except Exception as exc:  # collected: the assertion says which
            with lock:
                errors.append(exc)
            return
        with lock:
            versions.append(desired.version)

    threads = [threading.Thread(target=add, args=(replicas[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(versions) == list(range(1, 9))
    stored = replicas[0].desired_versions(tenant_id)
    assert [(d, v) for _, d, v, _, _ in stored] == [(device_id, 8)]
    newest = replicas[1].desired_state(tenant_id, device_id)
    assert newest is not None and newest.version == 8


def test_a_new_version_from_another_replica_drops_the_cached_document(
        db_url: str, request: pytest.FixtureRequest, redis: RedisProcess) -> None:
    """The breaker runs beside ingest, not in the API process: only Redis is shared."""
    tenant_id, device_id = new_id("ten"), "box-1"
    role = _role(db_url, request)
    writer = CloudDb.open(db_url, app_role=role, cache=HotCache(redis.url))
    reader = CloudDb.open(db_url, app_role=role, cache=HotCache(redis.url))
    try:
        writer.add_desired(tenant_id, device_id, _build(tenant_id, device_id), NOW)  # type: ignore[arg-type]

        def read() -> DesiredState | None:
            return reader.cache.desired(tenant_id, device_id,
                                        lambda: reader.desired_state(tenant_id, device_id))

        first = read()
        assert first is not None and first.version == 1
        assert redis.cli("exists", f"vx:desired:{tenant_id}:{device_id}") == "1"
        writer.add_desired(tenant_id, device_id, _build(tenant_id, device_id), NOW)  # type: ignore[arg-type]
        assert redis.cli("exists", f"vx:desired:{tenant_id}:{device_id}") == "0"
        second = read()
        assert second is not None and second.version == 2
    finally:
        writer.close()
        reader.close()


def test_dashboard_reads_are_fresh_after_promotion_flag_and_put(
        db_url: str, tmp_path: Path, request: pytest.FixtureRequest,
        redis: RedisProcess) -> None:
    pg_role = request.getfixturevalue("pg_server").app_role if db_url.startswith(
        "postgresql") else None
    cfg = control_config(tmp_path, db_url, app_role(db_url, pg_role), redis_url=redis.url)
    with control_app(cfg) as client:
        t = new_tenant(client, "Fresh")
        enrol(client, t, "box-dev", "dev")
        cloud_db: CloudDb = client.app.state.db  # type: ignore[attr-defined]
        cache: HotCache = client.app.state.cache  # type: ignore[attr-defined]
        key = f"vx:desired:{t.tenant_id}:box-dev"

        def cached() -> DesiredState:
            """What the dashboard's device page shows (the same cache call)."""
            got = cache.desired(t.tenant_id, "box-dev",
                                lambda: cloud_db.desired_state(t.tenant_id, "box-dev"))
            assert got is not None
            return got

        promote(client, t, approved_version(client, t, {"overlay": overlay("One")}), "dev")
        first = cached()
        assert first.blueprint_overlay is not None
        assert first.blueprint_overlay["restaurant"] == "One"
        assert redis.cli("exists", key) == "1" and cached() == first  # now a cache hit

        promote(client, t, approved_version(client, t, {"overlay": overlay("Two")}), "dev")
        second = cached()
        assert second.version > first.version
        assert second.blueprint_overlay is not None
        assert second.blueprint_overlay["restaurant"] == "Two"

        r = client.put(f"{t.base}/flags/answer_calls", headers=t.auth, json={"value": False})
        assert r.status_code == 200, r.text
        third = cached()
        assert third.version > second.version and third.flags["answer_calls"] is False

        r = client.put(f"{t.base}/devices/box-dev/desired", headers=OPS_AUTH,
                       json={"flags": {"answer_calls": True}})
        assert r.status_code == 200, r.text
        fourth = cached()
        assert fourth.version == r.json()["version"] and fourth.flags == {"answer_calls": True}
