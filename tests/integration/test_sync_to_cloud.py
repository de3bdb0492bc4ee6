"""Box outbox -> MQTT (real Mosquitto and the embedded amqtt) -> cloud ingest -> cloud API.

Every part is real: the box's SQLite store, the sync link, the broker, the ingest and its
SQLite database, and the FastAPI app. Ids are unique per test, so runs on the shared
Mosquitto never see each other's messages.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from appliance.config import BoxIdentity, SyncConfig
from appliance.store import LocalStore
from appliance.sync_link import SyncLink, box_link
from cloud.control.app import create_app
from cloud.control.db import CloudDb
from cloud.control.ingest import Ingest
from sync.contracts.events import EventEnvelope
from sync.contracts.messages import Ack
from sync.contracts.order import Order, OrderLine
from sync.ids import new_id
from sync.mqtt_link import MqttLink
from sync.topics import DeviceTopics
from tests.integration.cloud_harness import cloud_config, device_link, running_ingest, wait_until
from voxeron.embedded_broker import EmbeddedBroker

MOSQUITTO = "mqtt://127.0.0.1:1883"
LINES = [
    OrderLine(line_id="l1", item_id="pizza_pepperoni", name="Pepperoni pizza", quantity=1,
              size="large", unit_price_cents=1699),
    OrderLine(line_id="l2", item_id="coke", name="Coke", quantity=2, unit_price_cents=250),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["amqtt", "mosquitto"])
def broker_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "mosquitto":
        yield MOSQUITTO
    else:
        with EmbeddedBroker(port=0) as broker:
            yield broker.url


@dataclass
class Cloud:
    db: CloudDb
    ingest: Ingest
    api: TestClient
    db_path: Path

    def event_seqs(self, device_id: str) -> list[int]:
        """Seqs of stored events of a device, in the order the cloud stored them."""
        with contextlib.closing(sqlite3.connect(self.db_path)) as conn:
            rows = conn.execute(
                "SELECT seq FROM events WHERE device_id = ? ORDER BY rowid", (device_id,)
            ).fetchall()
        return [r[0] for r in rows]


@contextlib.contextmanager
def running_cloud(tmp_path: Path, url: str) -> Iterator[Cloud]:
    cfg = cloud_config(tmp_path / "cloud" / "cloud.sqlite3", url)
    with running_ingest(cfg) as (db, ingest), TestClient(create_app(cfg)) as api:
        yield Cloud(db, ingest, api, cfg.db_path)


@dataclass
class Box:
    identity: BoxIdentity
    store: LocalStore  # the test's own connection, as another box process would have

    def submit(self, tenant_id: str | None = None) -> Order:
        order, _ = self.store.submit_order(
            tenant_id=tenant_id or self.identity.tenant_id, device_id=self.identity.device_id,
            call_id=new_id("call"), caller="+15550100", lines=LINES, currency="USD",
            blueprint_hash="bp", idempotency_key=new_id("job"), now=datetime.now(UTC),
        )
        return order


@contextlib.contextmanager
def new_box(tmp_path: Path) -> Iterator[Box]:
    """A box with fresh ids and its own store file (shared by the sync test modules)."""
    identity = BoxIdentity(tenant_id=new_id("ten"), device_id=new_id("dev"),
                           data_dir=tmp_path / "box")
    store = LocalStore(identity.db_path)
    try:
        yield Box(identity, store)
    finally:
        store.close()


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    with new_box(tmp_path) as b:
        yield b


@contextlib.contextmanager
def running_sync(box: Box, url: str, ack_timeout_s: float = 2.0,
                 **settings: object) -> Iterator[SyncLink]:
    """voxeron-sync on a thread; `settings` override SyncConfig fields."""
    cfg = SyncConfig.model_validate({"mqtt_url": url, "ack_timeout_s": ack_timeout_s,
                                     "health_interval_s": 0.3, **settings})
    store = LocalStore(box.identity.db_path)
    sync = SyncLink(store, box_link(box.identity, cfg), box.identity, cfg, idle_poll_s=0.05)
    thread = threading.Thread(target=sync.run, kwargs={"connect_timeout": 2.0}, daemon=True)
    thread.start()
    try:
        yield sync
    finally:
        sync.stop()
        thread.join(15)
        store.close()
        assert not thread.is_alive(), "sync link did not stop"
        _clear_retained_status(box, url)


def _clear_retained_status(box: Box, url: str) -> None:
    """Leave no retained status behind on the shared Mosquitto."""
    with contextlib.suppress(Exception), contextlib.closing(device_link(url)) as link:
        link.connect(timeout=2)
        topics = DeviceTopics(box.identity.tenant_id, box.identity.device_id)
        link.publish(topics.status, b"", qos=1, retain=True)
        link.publish(topics.desired, b"", qos=1, retain=True)


def test_order_drains_in_order_to_the_cloud_and_the_outbox_is_acked(
    tmp_path: Path, box: Box, broker_url: str,
) -> None:
    order = box.submit()
    [job] = box.store.claim_print_jobs(datetime.now(UTC))
    box.store.complete_print(job, "kitchen", datetime.now(UTC))
    second = box.submit()
    assert box.store.outbox_depth() == 3
    with running_cloud(tmp_path, broker_url) as cloud:
        with running_sync(box, broker_url):
            wait_until(lambda: box.store.outbox_depth() == 0, what="outbox drained")
            got = cloud.api.get(f"/api/v1/orders/{order.order_id}")
            assert got.status_code == 200
            body = got.json()
            assert body["order_id"] == order.order_id and body["number"] == order.number
            assert body["ticket_printed"] is True
            assert [li["name"] for li in body["order"]["lines"]] == ["Pepperoni pizza", "Coke"]
            listed = cloud.api.get("/api/v1/orders",
                                   params={"tenant_id": box.identity.tenant_id}).json()
            assert {o["order_id"] for o in listed} == {order.order_id, second.order_id}
            assert cloud.event_seqs(box.identity.device_id) == [1, 2, 3]
            wait_until(lambda: _device(cloud, box) == (True, 0),
                       what="device online with an empty outbox")
        wait_until(lambda: _device(cloud, box) == (False, 0), what="device offline after stop")


def _device(cloud: Cloud, box: Box) -> tuple[bool, int | None] | None:
    """(online, outbox depth) of the box as the cloud API reports it."""
    devices = cloud.api.get("/api/v1/devices", params={"tenant_id": box.identity.tenant_id})
    return [(d["online"], d["outbox_depth"]) for d in devices.json()][0] if devices.json() else None


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    with running_cloud(tmp_path, MOSQUITTO) as c:
        yield c


@dataclass
class FakeDevice:
    """A hand-driven device: publishes raw payloads and collects the acks it gets back."""

    topics: DeviceTopics
    link: MqttLink
    acks: queue.Queue[Ack]

    def send(self, payload: bytes | EventEnvelope) -> None:
        self.link.publish(self.topics.events, payload, qos=1)

    def next_ack(self, timeout: float = 10.0) -> Ack:
        return self.acks.get(timeout=timeout)


@contextlib.contextmanager
def fake_device(tenant_id: str, device_id: str) -> Iterator[FakeDevice]:
    topics = DeviceTopics(tenant_id, device_id)
    link = device_link(MOSQUITTO)
    acks: queue.Queue[Ack] = queue.Queue()
    link.subscribe(topics.acks, lambda _t, p: acks.put(Ack.model_validate_json(p)), qos=1)
    link.connect()
    time.sleep(0.2)  # SUBACK before the first event
    try:
        yield FakeDevice(topics, link, acks)
    finally:
        link.close()


def test_same_event_twice_is_one_row_and_a_duplicate_ack(box: Box, cloud: Cloud) -> None:
    order = box.submit()
    [event] = box.store.pending_events()
    with fake_device(box.identity.tenant_id, box.identity.device_id) as device:
        device.send(event)
        device.send(event)
        acks = [device.next_ack(), device.next_ack()]
    assert [(a.event_id, a.status) for a in acks] == [
        (event.event_id, "stored"), (event.event_id, "duplicate")]
    assert cloud.event_seqs(box.identity.device_id) == [1]
    listed = cloud.api.get("/api/v1/orders", params={"tenant_id": box.identity.tenant_id}).json()
    assert [o["order_id"] for o in listed] == [order.order_id]


def test_garbage_payload_is_dropped_and_the_next_event_gets_through(
    box: Box, cloud: Cloud, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="cloud.control.ingest")
    order = box.submit()
    [event] = box.store.pending_events()
    good = event.model_dump_json().encode()
    with fake_device(box.identity.tenant_id, box.identity.device_id) as device:
        device.send(good[: len(good) // 2])  # truncated JSON
        device.send(b"\xff\xfe not even utf-8")
        device.send(b"[1, 2, 3]")
        device.send(event)
        ack = device.next_ack()
        assert (ack.event_id, ack.status) == (event.event_id, "stored")
        with pytest.raises(queue.Empty):
            device.next_ack(timeout=0.5)  # the garbage got no ack
    assert cloud.api.get(f"/api/v1/orders/{order.order_id}").status_code == 200
    dropped = [r for r in caplog.records if r.getMessage() == "dropping event payload"]
    assert len(dropped) == 3 and all(r.levelno == logging.ERROR for r in dropped)


def test_event_for_another_tenant_than_its_topic_is_rejected(box: Box, cloud: Cloud) -> None:
    order = box.submit()
    [event] = box.store.pending_events()
    intruder_tenant = new_id("ten")
    with fake_device(intruder_tenant, box.identity.device_id) as device:
        device.send(event)
        ack = device.next_ack()
    assert ack.status == "rejected" and ack.event_id == event.event_id
    assert ack.error is not None and ack.error.category == "validation"
    assert ack.error.code == "event.topic_mismatch"
    missing = cloud.api.get(f"/api/v1/orders/{order.order_id}")
    assert missing.status_code == 404
    assert missing.json()["code"] == "order.not_found"
    assert cloud.event_seqs(box.identity.device_id) == []


def test_a_rejected_event_does_not_block_the_box_queue(box: Box, cloud: Cloud) -> None:
    stray = box.submit(tenant_id=new_id("ten"))  # the cloud will refuse it: wrong tenant
    good = box.submit()
    with running_sync(box, MOSQUITTO):
        wait_until(lambda: box.store.outbox_depth() == 0, what="outbox drained")
        assert cloud.api.get(f"/api/v1/orders/{good.order_id}").status_code == 200
    assert cloud.api.get(f"/api/v1/orders/{stray.order_id}").status_code == 404
    assert cloud.event_seqs(box.identity.device_id) == [2]


def test_broker_unreachable_then_reachable_loses_nothing(box: Box, cloud: Cloud) -> None:
    first = box.submit()
    closed = f"mqtt://127.0.0.1:{free_port()}"
    with running_sync(box, closed) as sync:
        time.sleep(2.5)
        second = box.submit()  # the caller keeps ordering while the cloud is unreachable
        time.sleep(0.5)
        assert box.store.outbox_depth() == 2
        assert sync.cfg.mqtt_url == closed
    assert cloud.event_seqs(box.identity.device_id) == []
    with running_sync(box, MOSQUITTO):
        wait_until(lambda: box.store.outbox_depth() == 0, what="outbox drained after outage")
    for order in (first, second):
        assert cloud.api.get(f"/api/v1/orders/{order.order_id}").json()["number"] == order.number
    assert cloud.event_seqs(box.identity.device_id) == [1, 2]


def test_embedded_broker_restart_mid_run_loses_nothing(tmp_path: Path, box: Box) -> None:
    port = free_port()
    broker = EmbeddedBroker(port=port).start()
    url = broker.url
    try:
        with running_cloud(tmp_path, url) as cloud, running_sync(box, url):
            first = box.submit()
            wait_until(lambda: box.store.outbox_depth() == 0, what="first order synced")
            broker.stop()
            second = box.submit()
            time.sleep(1.0)
            assert box.store.outbox_depth() == 1
            broker = EmbeddedBroker(port=port).start()
            wait_until(lambda: box.store.outbox_depth() == 0, timeout=40,
                       what="second order synced after the broker came back")
            assert cloud.event_seqs(box.identity.device_id) == [1, 2]
            for order in (first, second):
                assert cloud.api.get(f"/api/v1/orders/{order.order_id}").status_code == 200
    finally:
        broker.stop()


def test_api_errors_are_envelopes(cloud: Cloud) -> None:
    missing_tenant = cloud.api.get("/api/v1/orders")
    assert missing_tenant.status_code == 422
    body = missing_tenant.json()
    assert body["code"] == "request.invalid" and body["category"] == "validation"
    assert "tenant_id" in body["message"]
    unknown = cloud.api.get("/api/v1/nothing-here")
    assert unknown.status_code == 404 and unknown.json()["category"] == "validation"
    assert cloud.api.get("/healthz").json()["ok"] is True


def test_low_disk_is_alerted_and_reported_with_outbox_figures(
    box: Box, cloud: Cloud, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="appliance.sync_downlink")
    box.submit()
    # A threshold above any real disk: the box's own free space is "low".
    with running_sync(box, MOSQUITTO, disk_low_bytes=10**18):
        wait_until(lambda: box.store.outbox_depth() == 0, what="outbox drained")

        def reported_health() -> dict[str, object] | None:
            devices = cloud.api.get("/api/v1/devices",
                                    params={"tenant_id": box.identity.tenant_id}).json()
            health = devices[0]["last_health"] if devices else None
            return health if health and health["alerts"] and health["outbox_depth"] == 0 \
                else None
        wait_until(reported_health, what="health with the disk_low alert")
        health = reported_health()
        assert health is not None and health["alerts"] == ["disk_low"]
        assert isinstance(health["disk_free_bytes"], int) and health["disk_free_bytes"] > 0
        assert health["outbox_oldest_age_s"] is None  # drained
    alerts = [r for r in caplog.records if getattr(r, "fields", {}).get("alert") == "disk_low"]
    assert alerts and all(r.levelno == logging.WARNING for r in alerts)
