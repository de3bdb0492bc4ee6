"""Device health history on both backends: ingest keeps every report once, the API serves
it per tenant (another tenant's device is a 404), ingest prunes past retention at most
hourly, PostgreSQL's RLS hides the rows from a connection with no tenant set, and the
device page draws the last 24 h with zero, one and many reports."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud.config import CloudConfig
from cloud.control.db import CloudDb
from cloud.control.ingest import Ingest, ingest_link
from sync.contracts.messages import DeviceStatus, Health
from sync.ids import new_id
from sync.topics import DeviceTopics
from tests.cloud.conftest import PgServer
from tests.cloud.control_client import OPS_AUTH, TenantTokens, enrol, envelope, new_tenant

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


class _Boxes:
    """The real ingest (never connected: health needs no acks) writing into the app's
    database, with its clock in the test's hands."""

    def __init__(self, client: TestClient, tmp_path: Path, days: int = 14) -> None:
        self.now = T0
        self.db: CloudDb = client.app.state.db  # type: ignore[attr-defined]
        self.ingest = Ingest(self.db, ingest_link(CloudConfig(db_path=tmp_path / "x.sqlite3")),
                             clock=lambda: self.now, health_history_days=days)

    def report(self, tenant_id: str, device_id: str, at: datetime, depth: int = 0,
               printer: str = "ok", alerts: tuple[str, ...] = (),
               disk: int | None = 8_000_000_000) -> Health:
        health = Health(tenant_id=tenant_id, device_id=device_id, at=at, outbox_depth=depth,
                        printer=printer, firmware="1.4.2", disk_free_bytes=disk,  # type: ignore[arg-type]
                        alerts=list(alerts))
        self.ingest.handle(DeviceTopics(tenant_id, device_id).health,
                           health.model_dump_json().encode())
        return health


def _history(client: TestClient, t: TenantTokens, device_id: str,
             **params: Any) -> dict[str, Any]:
    r = client.get(f"{t.base}/devices/{device_id}/health", headers=t.auth, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _rows(db: CloudDb, tenant_id: str) -> int:
    with db.db.tenant(tenant_id) as tx:
        row = tx.fetch_one("SELECT COUNT(*) AS n FROM device_health WHERE tenant_id = :tenant_id")
    return int(row["n"]) if row else 0


def test_a_report_ingested_twice_is_one_row_served_newest_first(
        client: TestClient, tmp_path: Path) -> None:
    boxes = _Boxes(client, tmp_path)
    t = new_tenant(client, "Historic")
    enrol(client, t, "box1")
    first = boxes.report(t.tenant_id, "box1", T0, depth=1)
    boxes.report(t.tenant_id, "box1", T0, depth=1)  # the box's resend: the same report
    assert _rows(boxes.db, t.tenant_id) == 1
    for minutes in (5, 10):
        boxes.report(t.tenant_id, "box1", T0 + timedelta(minutes=minutes), depth=minutes,
                     printer="paper_out" if minutes == 10 else "ok")
    body = _history(client, t, "box1")
    assert (body["tenant_id"], body["device_id"], body["limit"]) == (t.tenant_id, "box1", 288)
    assert [r["outbox_depth"] for r in body["reports"]] == [10, 5, 1]
    assert body["reports"][0]["printer"] == "paper_out"
    oldest = body["reports"][-1]
    assert datetime.fromisoformat(oldest["at"]) == first.at
    assert oldest["disk_free_bytes"] == 8_000_000_000 and oldest["firmware"] == "1.4.2"
    # The latest state is still the devices row: the fleet page's source.
    [device] = client.get("/api/v1/devices", params={"tenant_id": t.tenant_id}).json()
    assert device["last_health"]["outbox_depth"] == 10
    limited = _history(client, t, "box1", limit=2)
    assert [r["outbox_depth"] for r in limited["reports"]] == [10, 5]
    since = _history(client, t, "box1", since=(T0 + timedelta(minutes=5)).isoformat())
    assert [r["outbox_depth"] for r in since["reports"]] == [10, 5]
    ops = client.get(f"{t.base}/devices/box1/health", headers=OPS_AUTH)
    assert ops.status_code == 200 and len(ops.json()["reports"]) == 3


def test_another_tenants_device_and_bad_input_get_envelopes(
        client: TestClient, tmp_path: Path) -> None:
    boxes = _Boxes(client, tmp_path)
    a, b = new_tenant(client, "A"), new_tenant(client, "B")
    enrol(client, a, "box-a")
    boxes.report(a.tenant_id, "box-a", T0, depth=3)
    # B's token on A's tenant, and B's token naming A's device under B: both 404.
    r = client.get(f"{a.base}/devices/box-a/health", headers=b.auth)
    envelope(r, 404)
    r = client.get(f"{b.base}/devices/box-a/health", headers=b.auth)
    assert envelope(r, 404, "device.not_found").correlation.device_id == "box-a"
    envelope(client.get(f"{a.base}/devices/nobody/health", headers=a.auth), 404,
             "device.not_found")
    # Enrolled but silent: known, with an empty history.
    enrol(client, a, "box-quiet")
    assert _history(client, a, "box-quiet")["reports"] == []
    for params in ({"limit": 0}, {"limit": 1001}, {"limit": "many"},
                   {"since": "2026-11-25T08:00:00"}, {"since": "yesterday"}):
        r = client.get(f"{a.base}/devices/box-a/health", headers=a.auth, params=params)
        assert "request.invalid" == envelope(r, 422).code, params
    assert len(_history(client, a, "box-a")["reports"]) == 1  # nothing lost


def test_ingest_prunes_past_retention_at_most_hourly(
        client: TestClient, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    boxes = _Boxes(client, tmp_path, days=2)
    a, b = new_tenant(client, "Old A"), new_tenant(client, "Old B")
    old = T0 - timedelta(days=3)
    with caplog.at_level(logging.INFO, logger="cloud.control.ingest"):
        boxes.now = old  # the first report runs the prune; nothing is old yet
        boxes.report(a.tenant_id, "box1", old)
        boxes.report(b.tenant_id, "box9", old)
        boxes.report(a.tenant_id, "box1", old + timedelta(days=1))
        boxes.now = T0 - timedelta(minutes=30)
        boxes.report(a.tenant_id, "box1", boxes.now)  # due: prunes `old` of both tenants
        assert (_rows(boxes.db, a.tenant_id), _rows(boxes.db, b.tenant_id)) == (2, 0)
        boxes.now = T0  # 30 min later: not due
        boxes.report(a.tenant_id, "box1", T0)
        assert _rows(boxes.db, a.tenant_id) == 3
        boxes.now = T0 + timedelta(days=1, minutes=1)  # due again: old + 1 day is > 2 days old
        boxes.report(b.tenant_id, "box9", boxes.now)
    assert (_rows(boxes.db, a.tenant_id), _rows(boxes.db, b.tenant_id)) == (2, 1)
    at = [r["at"] for r in _history(client, a, "box1", limit=10)["reports"]]
    assert [datetime.fromisoformat(x) for x in at] == [T0, T0 - timedelta(minutes=30)]
    pruned = sorted((r.fields["tenant_id"], r.fields["deleted"])  # type: ignore[attr-defined]
                    for r in caplog.records if r.getMessage() == "health history pruned")
    assert pruned == sorted([(a.tenant_id, 1), (b.tenant_id, 1), (a.tenant_id, 1)])


def test_device_page_draws_the_last_day(client: TestClient, tmp_path: Path) -> None:
    boxes = _Boxes(client, tmp_path)
    t = new_tenant(client, "Drawn")
    db = boxes.db
    now = datetime.now(UTC)  # the page's clock is the real one
    db.record_status(DeviceStatus(tenant_id=t.tenant_id, device_id="box1", online=True), now)
    page = f"/dashboard/devices/{t.tenant_id}/box1"

    zero = client.get(page, headers=OPS_AUTH)
    assert zero.status_code == 200, zero.text
    assert 'id="health-none"' in zero.text and "<polyline" not in zero.text

    boxes.report(t.tenant_id, "box1", now - timedelta(hours=30), depth=99)  # older than 24 h
    boxes.report(t.tenant_id, "box1", now - timedelta(hours=2), depth=4)
    one = client.get(page, headers=OPS_AUTH).text
    assert "1 report in the last 24 h" in one
    assert one.count("<polyline") == 2 and one.count('class="health-change"') == 1
    assert "Outbox depth: <strong>4</strong>" in one

    for i in range(1, 40):
        boxes.report(t.tenant_id, "box1", now - timedelta(hours=2) + timedelta(minutes=i),
                     depth=i, printer="paper_out" if 10 <= i < 20 else "ok",
                     alerts=("disk_low",) if i >= 30 else (), disk=8_000_000_000 - i * 10**8)
    many = client.get(page, headers=OPS_AUTH).text
    assert "40 reports in the last 24 h" in many
    assert "Outbox depth: <strong>39</strong>" in many and "range 0 to 39" in many
    assert "Disk free: <strong>4.1 GB</strong>" in many
    changes = many.split('class="health-changes"')[1]
    # ok -> paper_out -> ok -> ok with disk_low, newest first.
    assert changes.count('class="health-change"') == 4
    assert changes.index("disk_low") < changes.index("paper_out")
    assert "<script" not in many


def test_rls_hides_history_without_a_tenant(pg_server: PgServer, tmp_path: Path) -> None:
    db = CloudDb.open(pg_server.url, app_role=pg_server.app_role)
    try:
        a, b = new_id("ten"), new_id("ten")
        for tenant in (a, b):
            health = Health(tenant_id=tenant, device_id="box", at=T0, outbox_depth=1,
                            firmware="1")
            assert db.record_health(health, T0) is True
            assert db.record_health(health, T0) is False
        with pg_server.connect_as(pg_server.app_role) as conn:
            assert conn.execute("SELECT count(*) FROM device_health").fetchone() == (0,)
            conn.execute("SELECT set_config('app.tenant_id', %s, false)", (a,))
            assert conn.execute("SELECT DISTINCT tenant_id FROM device_health").fetchall() == [
                (a,)]
            assert conn.execute("DELETE FROM device_health").rowcount == 1  # only its own
        assert db.health_history(b, "box") is not None
        assert len(db.health_history(b, "box").reports) == 1  # type: ignore[union-attr]
        assert db.health_history(a, "box").reports == []  # type: ignore[union-attr]
        assert db.health_history(b, "other") is None
    finally:
        db.close()
