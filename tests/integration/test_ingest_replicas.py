"""Cloud ingest at scale: group commit, and two replicas in one shared-subscription group.

The group-commit test drives one ingest's batch handling against the real Mosquitto.

A Mosquitto 2 started here, two `voxeron cloud run` processes with
VOXERON_CLOUD_INGEST_SHARE_GROUP set (so each event goes to one of them), and three boxes
draining real outboxes through the real SyncLink. Then one replica is frozen while the
boxes keep publishing (the broker keeps handing it its share) and killed with SIGKILL:
Mosquitto drops what it had queued or in flight for the dead member's session, and the
boxes' resend after their ack timeout is what brings those events to the survivor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.config import BoxIdentity, SyncConfig
from appliance.store import LocalStore
from appliance.sync_link import SyncLink, box_link
from sync.contracts.errors import Correlation
from sync.contracts.events import EventData, EventEnvelope, OrderSubmitted, TicketPrinted
from sync.contracts.messages import Ack
from sync.contracts.order import OrderLine
from sync.ids import new_id
from sync.topics import DeviceTopics
from tests.integration.cloud_harness import cloud_config, device_link, running_ingest, wait_until
from tests.integration.mosquitto_broker import PlainMosquitto

VOXERON = str(Path(sys.executable).with_name("voxeron"))
LINES = [OrderLine(line_id="l1", item_id="coke", name="Coke", quantity=1, unit_price_cents=250)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Replica:
    """One `voxeron cloud run` process of the share group."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int

    def healthy(self) -> bool:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        return False

    def committed(self) -> int:
        """Events this replica stored, from its 'events committed' log lines."""
        total = 0
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("msg") == "events committed":
                    total += int(entry["events"])
        return total


@contextlib.contextmanager
def replicas(tmp_path: Path, url: str, db: Path, names: list[str]) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    try:
        for name in names:
            port = _free_port()
            env = {**os.environ, "VOXERON_CLOUD_DB_PATH": str(db), "VOXERON_CLOUD_MQTT_URL": url,
                   "VOXERON_CLOUD_PORT": str(port), "VOXERON_CLOUD_INGEST_SHARE_GROUP": "ingest",
                   "VOXERON_CLOUD_INGEST_CLIENT_ID": f"ingest-{name}-{new_id('job')}",
                   "VOXERON_CLOUD_INGEST_CLEAN_SESSION": "true"}
            log = tmp_path / f"cloud-{name}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen([VOXERON, "cloud", "run"], env=env, cwd=tmp_path,
                                        stdout=out, stderr=subprocess.STDOUT)
            started.append(Replica(name, proc, log, port))
        for r in started:
            wait_until(r.healthy, timeout=60, what=f"replica {r.name} serving")
        yield started
    finally:
        for r in started:
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGCONT)
                r.proc.terminate()
        for r in started:
            r.proc.wait(20)


@dataclass
class Box:
    identity: BoxIdentity
    store: LocalStore

    def submit(self, n: int) -> None:
        for _ in range(n):
            self.store.submit_order(
                tenant_id=self.identity.tenant_id, device_id=self.identity.device_id,
                call_id=new_id("call"), caller=None, lines=LINES, currency="USD",
                blueprint_hash="bp", idempotency_key=new_id("job"), now=datetime.now(UTC))

    def event_ids(self) -> set[str]:
        with contextlib.closing(sqlite3.connect(self.identity.db_path)) as c:
            return {r[0] for r in c.execute("SELECT event_id FROM outbox")}


@contextlib.contextmanager
def syncing(boxes: list[Box], url: str) -> Iterator[None]:
    links = []
    threads = []
    cfg = SyncConfig(mqtt_url=url, ack_timeout_s=1.0, health_interval_s=0.5)
    for box in boxes:
        store = LocalStore(box.identity.db_path)
        link = SyncLink(store, box_link(box.identity, cfg), box.identity, cfg, idle_poll_s=0.05)
        thread = threading.Thread(target=link.run, kwargs={"connect_timeout": 5.0}, daemon=True)
        thread.start()
        links.append((link, store))
        threads.append(thread)
    try:
        yield
    finally:
        for link, _ in links:
            link.stop()
        for thread in threads:
            thread.join(15)
        for _, store in links:
            store.close()
        assert not any(t.is_alive() for t in threads), "a sync link did not stop"


def _cloud_event_ids(db: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(db)) as c:
        return [r[0] for r in c.execute("SELECT event_id FROM events WHERE tenant_id LIKE 'ten_%'")]


def _drained(boxes: list[Box]) -> bool:
    return all(b.store.outbox_depth() == 0 for b in boxes)


@pytest.mark.slow
def test_two_replicas_share_the_fleet_and_a_killed_one_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.sync_link")
    db = tmp_path / "cloud" / "cloud.sqlite3"
    tenant_id = new_id("ten")
    boxes = []
    for i in range(3):
        identity = BoxIdentity(tenant_id=tenant_id, device_id=new_id("dev"),
                               data_dir=tmp_path / f"box{i}")
        boxes.append(Box(identity, LocalStore(identity.db_path)))
    with PlainMosquitto(tmp_path / "broker", ["max_queued_messages 100000"]) as broker, \
            replicas(tmp_path, broker.url, db, ["a", "b"]) as (a, b), syncing(boxes, broker.url):
        # Phase 1: both replicas alive; every event stored once and acked.
        for box in boxes:
            box.submit(120)
        wait_until(lambda: _drained(boxes), timeout=60, what="outboxes drained by two replicas")
        stored = _cloud_event_ids(db)
        expected = set().union(*(box.event_ids() for box in boxes))
        assert len(stored) == len(set(stored)) == len(expected) == 360
        assert set(stored) == expected
        assert a.committed() > 0 and b.committed() > 0, "the share group split the events"
        assert a.committed() + b.committed() >= 360

        # Phase 2: B freezes (still connected, so the broker keeps routing its share to it),
        # the boxes keep publishing, then B dies with SIGKILL.
        b.proc.send_signal(signal.SIGSTOP)
        resends_before = _resends(caplog)
        for box in boxes:
            box.submit(60)
        wait_until(lambda: len(_cloud_event_ids(db)) > 360, what="A storing new events")
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(10)
        wait_until(lambda: _drained(boxes), timeout=90, what="outboxes drained by the survivor")
        stored = _cloud_event_ids(db)
        expected = set().union(*(box.event_ids() for box in boxes))
        assert len(stored) == len(set(stored)) == len(expected) == 540
        assert set(stored) == expected
        # What was routed to B is gone with its session: the boxes' resends recovered it.
        assert _resends(caplog) > resends_before
        assert a.proc.poll() is None


def _resends(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.getMessage() == "events published"
               and getattr(r, "fields", {}).get("attempt", 1) > 1)


def _envelope(tenant_id: str, device_id: str, seq: int, data: EventData) -> EventEnvelope:
    return EventEnvelope(event_id=new_id("evt"), tenant_id=tenant_id, device_id=device_id,
                         seq=seq, occurred_at=datetime.now(UTC), correlation=Correlation(),
                         data=data)


def test_group_commit_stores_a_batch_once_and_acks_in_arrival_order(tmp_path: Path) -> None:
    tenant_id, device_id, other_id = new_id("ten"), new_id("dev"), new_id("dev")
    store = LocalStore(tmp_path / "box" / "box.sqlite3")
    order, _ = store.submit_order(
        tenant_id=tenant_id, device_id=device_id, call_id=new_id("call"), caller=None,
        lines=LINES, currency="USD", blueprint_hash="bp", idempotency_key=new_id("job"),
        now=datetime.now(UTC))
    store.close()
    submitted = _envelope(tenant_id, device_id, 1, OrderSubmitted(order=order))
    printed = _envelope(tenant_id, device_id, 2, TicketPrinted(
        order_id=order.order_id, action_id=new_id("act"), printer="kitchen",
        printed_at=datetime.now(UTC)))
    elsewhere = _envelope(tenant_id, other_id, 1, TicketPrinted(
        order_id=new_id("ord"), action_id=new_id("act"), printer="kitchen",
        printed_at=datetime.now(UTC)))
    topics = DeviceTopics(tenant_id, device_id)
    cfg = cloud_config(tmp_path / "cloud.sqlite3", "mqtt://127.0.0.1:1883")
    acks: queue.Queue[Ack] = queue.Queue()
    with running_ingest(cfg) as (db, ingest), contextlib.closing(
            device_link(cfg.mqtt_url)) as device:
        device.subscribe(topics.acks, lambda _t, p: acks.put(Ack.model_validate_json(p)), qos=1)
        device.connect()
        wait_until(lambda: device.connected, what="device connected")
        time.sleep(0.2)  # SUBACK before the acks
        wrong_tenant = submitted.model_copy(update={"tenant_id": new_id("ten")})
        ingest.handle_batch([
            (topics.events, b"{not json"),
            (topics.events, wrong_tenant.model_dump_json().encode()),
            (topics.events, submitted.model_dump_json().encode()),
            (topics.events, printed.model_dump_json().encode()),
            (topics.events, submitted.model_dump_json().encode()),
            (DeviceTopics(tenant_id, other_id).events, elsewhere.model_dump_json().encode()),
        ])
        got = [acks.get(timeout=10) for _ in range(4)]
        assert [(a.event_id, a.status) for a in got] == [
            (submitted.event_id, "rejected"), (submitted.event_id, "stored"),
            (printed.event_id, "stored"), (submitted.event_id, "duplicate")]
        record = db.order(order.order_id)
        assert record is not None and record.ticket_printed
        assert {d.device_id for d in db.devices(tenant_id)} == {device_id, other_id}
    with contextlib.closing(sqlite3.connect(cfg.db_path)) as c:
        rows = c.execute("SELECT event_id, seq FROM events WHERE tenant_id = ? AND device_id = ? "
                         "ORDER BY rowid", (tenant_id, device_id)).fetchall()
    assert rows == [(submitted.event_id, 1), (printed.event_id, 2)]
