"""The Redis hot cache against a real redis-server that the test stops and starts again.

While Redis is down every answer must still be right (served from the database, limits
from the process's own counters); when it is back the cache is used again.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloud.control.app import create_app
from cloud.control.cache import HotCache, RedisLimiter
from cloud.control.control_state import utc_now
from sync.contracts.messages import DesiredState
from tests.cloud.control_client import OPS_AUTH, control_config, new_tenant

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
PINNED = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class RedisProcess:
    """One redis-server on a fixed free port, without persistence; stop/start at will."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port, self.workdir = port, workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> str:
        out = subprocess.run([REDIS_CLI, "-p", str(self.port), *args], capture_output=True,
                             timeout=10, check=False)
        return out.stdout.decode().strip()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while self.cli("ping") != "PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            assert self.proc.poll() is None, "redis-server exited"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(_free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _desired(version: int) -> DesiredState:
    return DesiredState(tenant_id="t1", device_id="d1", version=version, issued_at=PINNED,
                        flags={"answer_calls": True})


def _wait_until(check: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_cache_serves_from_the_database_while_redis_is_down_and_returns(
        redis_server: RedisProcess) -> None:
    cache = HotCache(redis_server.url, backoff_s=0.1, max_backoff_s=0.2)
    loads: list[int] = []

    def load() -> DesiredState:
        loads.append(1)
        return _desired(len(loads))

    assert cache.desired("t1", "d1", load) == _desired(1)
    assert cache.desired("t1", "d1", load) == _desired(1)  # the second read is a hit
    assert len(loads) == 1 and cache.active
    ttl_ms = int(redis_server.cli("pttl", "vx:desired:t1:d1"))
    assert 0 < ttl_ms <= 30_000

    redis_server.stop()
    for _ in range(5):  # every read falls through to the database, none fails
        got = cache.desired("t1", "d1", load)
        assert got is not None and got.version == len(loads)
    assert not cache.active and cache.errors >= 1
    assert len(loads) == 6

    redis_server.start()  # a fresh, empty Redis on the same port
    _wait_until(lambda: cache.desired("t1", "d1", load) is not None and cache.active,
                "the cache never switched itself back on")
    assert redis_server.cli("exists", "vx:desired:t1:d1") == "1"
    before = len(loads)
    assert cache.desired("t1", "d1", load) == _desired(before)  # a hit again
    assert len(loads) == before
    cache.forget_desired("t1", "d1")
    assert redis_server.cli("exists", "vx:desired:t1:d1") == "0"
    cache.close()


def test_unconfigured_cache_always_loads() -> None:
    cache = HotCache(None)
    assert not cache.configured and not cache.active
    assert cache.desired("t1", "d1", lambda: _desired(3)) == _desired(3)
    assert cache.call(lambda r: r.ping()) == (False, None)


def test_redis_limiter_shares_one_budget_and_falls_back(redis_server: RedisProcess) -> None:
    cache = HotCache(redis_server.url, backoff_s=0.1, max_backoff_s=0.2)
    a, b = RedisLimiter(cache), RedisLimiter(cache)
    now = 1000.0
    assert a.take("api:t", 1.0, 2.0, now) is None
    assert b.take("api:t", 1.0, 2.0, now) is None
    wait = a.take("api:t", 1.0, 2.0, now)  # the shared bucket of 2 is empty
    assert wait is not None and wait == pytest.approx(1.0)
    assert b.take("api:t", 1.0, 2.0, now + 1.0) is None  # refilled one token a second later
    assert a.enter("in_flight:t", 1) and not b.enter("in_flight:t", 1)
    a.leave("in_flight:t")
    assert redis_server.cli("exists", "vx:rl:in_flight:t") == "0"

    redis_server.stop()
    assert a.take("api:t", 1.0, 2.0, now + 50) is None  # its own bucket, still limiting
    assert a.take("api:t", 1.0, 2.0, now + 50) is None
    assert a.take("api:t", 1.0, 2.0, now + 50) is not None
    assert a.enter("in_flight:t", 1) and not a.enter("in_flight:t", 1)
    redis_server.start()
    a.leave("in_flight:t")  # left where it entered: the process's own counter
    _wait_until(lambda: b.enter("in_flight:t", 1) and cache.active, "redis not used again")
    assert redis_server.cli("get", "vx:rl:in_flight:t") == "1"
    cache.close()


def test_api_answers_stay_correct_while_redis_stops_and_restarts(
        tmp_path: Path, redis_server: RedisProcess) -> None:
    """Two API replicas on one Redis: they share a tenant's budget while it is up, keep
    answering (each limiting on its own) while it is down, and share it again after."""
    cfg = control_config(tmp_path, f"sqlite:///{tmp_path / 'control.sqlite3'}", "voxeron_app",
                         redis_url=redis_server.url)
    apps = [create_app(cfg), create_app(cfg)]
    for app in apps:  # a pinned clock: buckets never refill during the test
        app.dependency_overrides[utc_now] = lambda: PINNED
        app.state.cache = HotCache(redis_server.url, backoff_s=0.1, max_backoff_s=0.2)
        app.state.rate_limiter = RedisLimiter(app.state.cache)
    with TestClient(apps[0]) as one, TestClient(apps[1]) as two:
        t = new_tenant(one, "cached", quotas={"api_requests_per_s": 3})  # burst 6
        def get(client: TestClient) -> int:
            r = client.get(t.base, headers=t.auth)
            if r.status_code == 200:
                assert r.json()["tenant_id"] == t.tenant_id and r.json()["name"] == "cached"
            else:
                assert r.json()["code"] == "rate_limit.exceeded"
            return r.status_code

        assert [get(c) for c in (one, two, one, two, one, two)] == [200] * 6
        assert get(one) == 429 and get(two) == 429  # one budget across both replicas
        assert redis_server.cli("exists", f"vx:rl:api:{t.tenant_id}") == "1"

        redis_server.stop()
        # Each replica falls back to its own fresh bucket: answers stay right, still limited.
        assert [get(one) for _ in range(6)] == [200] * 6 and get(one) == 429
        assert [get(two) for _ in range(6)] == [200] * 6
        assert one.get("/api/v1/tenants", headers=OPS_AUTH).status_code == 200
        assert all(a.state.cache.errors >= 1 and not a.state.cache.active for a in apps)

        redis_server.start()  # empty: the shared bucket starts full again
        # Past both replicas' back-off (max 0.2 s), so each one's next call tries Redis;
        # polling instead would let replica two answer from its own spent bucket meanwhile.
        time.sleep(0.5)
        assert get(one) == 200 and apps[0].state.cache.active
        assert redis_server.cli("exists", f"vx:rl:api:{t.tenant_id}") == "1"
        statuses = [get(two) for _ in range(8)]
        assert apps[1].state.cache.active
        assert statuses == [200] * 5 + [429] * 3  # the burst of 6, shared again with one
