"""Two real `voxeron cloud worker` processes on one PostgreSQL database share 200 POS
write-backs across 20 tenants: every action is claimed exactly once (FOR UPDATE SKIP
LOCKED), both replicas do work, and the fake Square sees exactly one request and one
order per order. Throughput is printed, never asserted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from cloud.db import Database, open_database
from cloud.integration.action_store import action_events
from cloud.integration.order_inbox import record_order_events
from tests.cloud.conftest import PgServer
from tests.cloud.secret_keys import secret_env
from tests.cloud.test_integration_pos import (
    close_open_actions,
    configure_square,
    fault,
    make_order,
    new_tenant,
    submitted,
)
from tests.peers.fake_square import FakeSquare

ROOT = Path(__file__).resolve().parents[2]
TENANTS, ORDERS_PER_TENANT = 20, 10


@pytest.fixture
def pg_db(pg_server: PgServer) -> Iterator[Database]:
    db = open_database(pg_server.url, app_role=pg_server.app_role)
    close_open_actions(db)
    yield db
    close_open_actions(db)
    db.close()


def start_worker(pg: PgServer, worker_id: str, **env: str) -> subprocess.Popen[str]:
    """A real `voxeron cloud worker` process on `pg`, started and ready; `env` adds or
    overrides VOXERON_CLOUD_WORKER_* settings."""
    full = {**os.environ, "VOXERON_CLOUD_DATABASE_URL": pg.url,
            "VOXERON_CLOUD_DATABASE_APP_ROLE": pg.app_role,
            "VOXERON_CLOUD_WORKER_WORKER_ID": worker_id, "VOXERON_CLOUD_WORKER_PARALLEL": "4",
            "VOXERON_CLOUD_WORKER_LANE_CAP": "2", "VOXERON_CLOUD_WORKER_POLL_S": "0.05",
            **secret_env(), **env}
    proc = subprocess.Popen([sys.executable, "-m", "voxeron", "cloud", "worker"], cwd=ROOT,
                            env=full, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "worker <id> ready" once it is connected and migrated
    assert "ready" in line, f"worker {worker_id} did not start: {line!r}"
    return proc


def stop_worker(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_two_worker_processes_deliver_each_order_exactly_once(
        pg_server: PgServer, pg_db: Database) -> None:
    with FakeSquare() as square:
        fault(square, kind="slow", delay_ms=5, count=TENANTS * ORDERS_PER_TENANT)
        tenants = [new_tenant() for _ in range(TENANTS)]
        for tenant in tenants:
            configure_square(pg_db, tenant, square.url)
        workers = [start_worker(pg_server, "wa"), start_worker(pg_server, "wb")]
        try:
            orders = [make_order(t, n) for t in tenants for n in range(1, ORDERS_PER_TENANT + 1)]
            started = time.monotonic()
            actions = record_order_events(pg_db, [submitted(o) for o in orders],
                                          datetime.now(UTC))
            assert len(actions) == len(orders)
            deadline = started + 120
            names = {f"t{i}": t for i, t in enumerate(tenants)}
            mine = ", ".join(f":{n}" for n in names)  # only this test's tenants
            while time.monotonic() < deadline:
                with pg_db.fleet() as tx:
                    row = tx.fetch_one("SELECT COUNT(*) AS n FROM integration_actions WHERE "
                                       f"state = 'succeeded' AND tenant_id IN ({mine})", names)
                if row is not None and row["n"] >= len(orders):
                    break
                time.sleep(0.1)
            elapsed = time.monotonic() - started
        finally:
            for proc in workers:
                stop_worker(proc)
        stats = httpx.get(f"{square.url}/_fake/stats").json()
    print(f"\n2 workers, {len(orders)} POS writes over {TENANTS} tenants: {elapsed:.2f} s "
          f"({len(orders) / elapsed:.0f} orders/s)")
    by_ref = stats["orders_by_reference"]
    assert all(by_ref.get(o.order_id) == 1 for o in orders), "an order is missing or doubled"
    assert stats["requests"] == len(orders) and stats["replays"] == 0  # each sent once
    claims: Counter[str] = Counter()
    for action in actions:
        with pg_db.tenant(action.tenant_id) as tx:
            events = action_events(tx, action.action_id)
        assert [e.transition for e in events] == ["create", "claim", "succeed"]
        claims[events[1].actor] += 1
    assert set(claims) == {"worker:wa", "worker:wb"}, claims
