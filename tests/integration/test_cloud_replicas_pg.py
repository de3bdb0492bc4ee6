"""Two API replicas and two workers on one PostgreSQL: nothing lost, nothing done twice.

A Mosquitto 2 started here; two `voxeron cloud run` processes (ingest in one
shared-subscription group, so each event goes to one of them) and two
`voxeron cloud worker` processes, all on one throwaway PostgreSQL database; three boxes
drain real outboxes through the real SyncLink; the tenant's Square integration points at
the POS emulator. Every event is stored once, every order reaches the POS once, and both
API replicas ingest and answer requests from the shared database.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from appliance.config import BoxIdentity
from appliance.store import LocalStore
from cloud.db import open_database
from sync.ids import new_id
from tests.cloud.secret_keys import secret_env
from tests.cloud.test_integration_pos import configure_square
from tests.integration.cloud_harness import wait_until
from tests.integration.mosquitto_broker import PlainMosquitto
from tests.integration.test_ingest_replicas import (
    VOXERON,
    Box,
    Replica,
    _drained,
    _free_port,
    syncing,
)
from voxeron.pos_emulator import FakeSquare

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
ORDERS_PER_BOX = 15


@pytest.fixture
def pg() -> Iterator[tuple[str, str]]:
    """A throwaway database and app role for this test: (owner URL, app role)."""
    run = uuid.uuid4().hex[:10]
    name, role = f"vx_replicas_{run}", f"vx_rep_{run}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}", role
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')
            admin.execute(f'DROP ROLE IF EXISTS "{role}_fleet"')


def _env(url: str, role: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "VOXERON_CLOUD_DATABASE_URL": url,
            "VOXERON_CLOUD_DATABASE_APP_ROLE": role, **secret_env(), **extra}


@contextlib.contextmanager
def _processes(tmp_path: Path, url: str, role: str, mqtt_url: str,
               ) -> Iterator[list[Replica]]:
    apis: list[Replica] = []
    workers: list[subprocess.Popen[str]] = []
    try:
        for name in ("a", "b"):
            port = _free_port()
            log = tmp_path / f"cloud-{name}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [VOXERON, "cloud", "run"], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                    env=_env(url, role, VOXERON_CLOUD_DB_PATH=str(tmp_path / "unused.sqlite3"),
                             VOXERON_CLOUD_MQTT_URL=mqtt_url, VOXERON_CLOUD_PORT=str(port),
                             VOXERON_CLOUD_INGEST_SHARE_GROUP="ingest",
                             VOXERON_CLOUD_INGEST_CLIENT_ID=f"ingest-{name}-{new_id('job')}",
                             VOXERON_CLOUD_INGEST_CLEAN_SESSION="true"))
            apis.append(Replica(name, proc, log, port))
        for worker_id in ("wa", "wb"):
            worker = subprocess.Popen(
                [VOXERON, "cloud", "worker"], cwd=tmp_path, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True,
                env=_env(url, role, VOXERON_CLOUD_WORKER_WORKER_ID=worker_id,
                         VOXERON_CLOUD_WORKER_POLL_S="0.05"))
            workers.append(worker)
            assert worker.stdout is not None
            assert "ready" in worker.stdout.readline(), f"worker {worker_id} did not start"
        for api in apis:
            wait_until(api.healthy, timeout=60, what=f"replica {api.name} serving")
        yield apis
    finally:
        for proc in [*(a.proc for a in apis), *workers]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*(a.proc for a in apis), *workers]:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_two_api_and_two_worker_replicas_on_one_postgres(
        tmp_path: Path, pg: tuple[str, str]) -> None:
    url, role = pg
    tenant_id = new_id("ten")
    boxes = []
    for i in range(3):
        identity = BoxIdentity(tenant_id=tenant_id, device_id=new_id("dev"),
                               data_dir=tmp_path / f"box{i}")
        boxes.append(Box(identity, LocalStore(identity.db_path)))
    with FakeSquare() as square:
        setup = open_database(url, app_role=role)  # migrates and creates the roles
        try:
            configure_square(setup, tenant_id, square.url)
        finally:
            setup.close()
        with PlainMosquitto(tmp_path / "broker", ["max_queued_messages 100000"]) as broker, \
                _processes(tmp_path, url, role, broker.url) as (a, b), \
                syncing(boxes, broker.url):
            for box in boxes:
                box.submit(ORDERS_PER_BOX)
            wait_until(lambda: _drained(boxes), timeout=90, what="outboxes drained")
            total = 3 * ORDERS_PER_BOX

            def pos_orders() -> int:
                return int(httpx.get(f"{square.url}/_fake/stats").json()["orders"])

            wait_until(lambda: pos_orders() >= total, timeout=90, what="orders at the POS")
            listed = [httpx.get(f"http://127.0.0.1:{r.port}/api/v1/orders",
                                params={"tenant_id": tenant_id, "limit": 500}).json()
                      for r in (a, b)]
            committed = (a.committed(), b.committed())

        expected = set().union(*(box.event_ids() for box in boxes))
        with psycopg.connect(url) as owner:  # the owner: every row, past RLS
            stored = [r[0] for r in owner.execute(
                "SELECT event_id FROM events WHERE tenant_id = %s", (tenant_id,))]
            order_ids = {r[0] for r in owner.execute(
                "SELECT order_id FROM orders WHERE tenant_id = %s", (tenant_id,))}
        stats = httpx.get(f"{square.url}/_fake/stats").json()

    assert len(stored) == len(set(stored)) == len(expected) == total
    assert set(stored) == expected
    assert len(order_ids) == total
    # Every order created once at the POS (the worker sends reference_id = order id).
    assert stats["orders"] == total
    assert stats["orders_by_reference"] == {o[:40]: 1 for o in order_ids}
    # Both API replicas ingested a share and served the same orders from the shared DB.
    assert committed[0] > 0 and committed[1] > 0, committed
    assert [len(rows) for rows in listed] == [total, total]
    assert {r["order_id"] for r in listed[0]} == {r["order_id"] for r in listed[1]} == order_ids
    print(f"\nreplicas: ingest split {committed}, POS requests {stats['requests']}, "
          f"replays {stats['replays']}")
