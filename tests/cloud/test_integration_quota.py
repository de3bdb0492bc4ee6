"""A tenant's `concurrent_integrations` quota holds across its lanes and across worker
replicas: on SQLite and PostgreSQL through the claim API, and on PostgreSQL with two real
`voxeron cloud worker` processes delivering to a real webhook endpoint that counts how many
of the tenant's requests it holds at once."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cloud.control.tenants import Quotas, TenantCreate, TenantPatch, change_tenant, create_tenant
from cloud.db import Database, open_database
from cloud.integration.claims import Lane, claim_lane, finish
from cloud.integration.delivery import Outcome
from cloud.integration.order_inbox import record_order_events
from cloud.integration.remediation import put_integration
from cloud.integration.webhooks import WebhookConfig, new_secret
from tests.cloud.conftest import PgServer
from tests.cloud.secret_keys import TEST_SECRETS
from tests.cloud.test_integration_pos import (
    POLICY,
    T0,
    close_open_actions,
    ctx,
    make_order,
    new_tenant,
    submitted,
)
from tests.cloud.test_integration_workers_pg import start_worker, stop_worker

ROOT = Path(__file__).resolve().parents[2]
LANES = ("hooks_a", "hooks_b")
QUOTA_WORKER_ENV = {"VOXERON_CLOUD_WORKER_POLL_S": "0.02",
                    "VOXERON_CLOUD_WORKER_RETENTION_INTERVAL_S": "0"}


def tenant_with_hooks(db: Database, quota: int, url: str = "http://127.0.0.1:9/") -> str:
    """A tenant with the given quota and two webhook integrations (two lanes)."""
    tenant = new_tenant()
    create_tenant(db, ctx(), TenantCreate(tenant_id=tenant, name="quota test",
                                          quotas=Quotas(concurrent_integrations=quota)))
    for integration in LANES:
        put_integration(db, tenant, integration, WebhookConfig(url=url, secret=new_secret()),
                        True, ctx(), TEST_SECRETS)
    return tenant


def in_flight(db: Database, tenant: str) -> int:
    with db.tenant(tenant) as tx:
        row = tx.fetch_one("SELECT COUNT(*) AS n FROM integration_actions "
                           "WHERE tenant_id = :tenant_id AND state = 'in_flight'")
    return int(row["n"]) if row else 0


def states(db: Database, tenant: str) -> list[str]:
    with db.tenant(tenant) as tx:
        return [r["state"] for r in tx.fetch_all(
            "SELECT state FROM integration_actions WHERE tenant_id = :tenant_id")]


@pytest.fixture
def db(database: Database) -> Iterator[Database]:
    close_open_actions(database)
    yield database
    close_open_actions(database)


def test_a_tenant_at_its_quota_gets_nothing_more_on_any_lane(db: Database) -> None:
    tenant = tenant_with_hooks(db, quota=1)
    created = record_order_events(db, [submitted(make_order(tenant, n)) for n in (1, 2, 3)], T0)
    assert len(created) == 6  # three orders, two webhooks each
    rng = random.Random(1)
    [first] = claim_lane(db, Lane(tenant, "hooks_a"), T0, 2, "w1", POLICY, rng)
    assert claim_lane(db, Lane(tenant, "hooks_a"), T0, 2, "w1", POLICY, rng) == []
    assert claim_lane(db, Lane(tenant, "hooks_b"), T0, 2, "w2", POLICY, rng) == []
    assert in_flight(db, tenant) == 1
    finish(db, first, Outcome.delivered({"status": 204}), T0, "w1", POLICY, rng)
    [second] = claim_lane(db, Lane(tenant, "hooks_b"), T0, 2, "w2", POLICY, rng)
    assert second.action.integration_id == "hooks_b" and in_flight(db, tenant) == 1


def test_quota_zero_pauses_the_tenant_keeps_its_work_and_serves_others(db: Database) -> None:
    paused = tenant_with_hooks(db, quota=0)
    other = tenant_with_hooks(db, quota=4)
    record_order_events(db, [submitted(make_order(t, 1)) for t in (paused, other)], T0)
    rng = random.Random(2)
    for lane in LANES:
        assert claim_lane(db, Lane(paused, lane), T0, 2, "w1", POLICY, rng) == []
        assert len(claim_lane(db, Lane(other, lane), T0, 2, "w1", POLICY, rng)) == 1
    assert states(db, paused) == ["pending", "pending"]  # nothing lost, nothing touched
    assert in_flight(db, other) == 2
    with db.tenant(paused) as tx:  # ops lifts the pause: the work flows again
        change_tenant(tx, ctx(), TenantPatch.model_validate(
            {"quotas": {"concurrent_integrations": 1}}))
    claimed = [c for lane in LANES
               for c in claim_lane(db, Lane(paused, lane), T0, 2, "w1", POLICY, rng)]
    assert len(claimed) == 1 and in_flight(db, paused) == 1


class CountingEndpoint:
    """A webhook endpoint that holds each request `hold_s` and records the most requests
    it held at once; the count drops before the answer leaves, so a worker that starts
    its next delivery after seeing the answer is never counted twice."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.now = self.most = self.total = 0
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with endpoint._lock:
                    endpoint.now += 1
                    endpoint.total += 1
                    endpoint.most = max(endpoint.most, endpoint.now)
                time.sleep(endpoint.hold_s)
                with endpoint._lock:
                    endpoint.now -= 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_two_worker_processes_keep_a_tenant_at_one_request_at_a_time(
        pg_server: PgServer) -> None:
    db = open_database(pg_server.url, app_role=pg_server.app_role)
    endpoint = CountingEndpoint(hold_s=0.15)
    close_open_actions(db)
    try:
        tenant = tenant_with_hooks(db, quota=1, url=endpoint.url)
        workers = [start_worker(pg_server, "qa", **QUOTA_WORKER_ENV),
                   start_worker(pg_server, "qb", **QUOTA_WORKER_ENV)]
        try:
            actions = record_order_events(
                db, [submitted(make_order(tenant, n)) for n in (1, 2, 3)], datetime.now(UTC))
            assert len(actions) == 6  # two lanes, three due actions each, lane_cap 2
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and states(db, tenant).count("succeeded") < 6:
                time.sleep(0.05)
        finally:
            for proc in workers:
                stop_worker(proc)
        assert sorted(states(db, tenant)) == ["succeeded"] * 6
        assert endpoint.total == 6
        assert endpoint.most == 1, f"{endpoint.most} requests of one tenant at once"
    finally:
        endpoint.close()
        close_open_actions(db)
        db.close()
