"""A real `voxeron appliance sync` process: online when up, offline by last will when killed.

SIGKILL gives the process no chance to say goodbye, so only the broker's last will can
tell the cloud; SIGTERM must end it cleanly with exit 0 and an offline status of its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.store import LocalStore
from cloud.control.db import CloudDb
from sync.contracts.order import OrderLine
from sync.ids import new_id
from sync.topics import DeviceTopics
from tests.integration.cloud_harness import cloud_config, device_link, wait_until
from tests.integration.cloud_harness import running_ingest as harness_ingest
from voxeron.embedded_broker import EmbeddedBroker

MOSQUITTO = "mqtt://127.0.0.1:1883"


@contextlib.contextmanager
def running_ingest(tmp_path: Path, url: str) -> Iterator[CloudDb]:
    with harness_ingest(cloud_config(tmp_path / "cloud.sqlite3", url)) as (db, _):
        yield db


@pytest.fixture(params=["amqtt", "mosquitto"])
def broker_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "mosquitto":
        yield MOSQUITTO
    else:
        with EmbeddedBroker(port=0) as broker:
            yield broker.url


def _start_sync(tmp_path: Path, url: str, tenant_id: str, device_id: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VOXERON_TENANT_ID": tenant_id, "VOXERON_DEVICE_ID": device_id,
           "VOXERON_DATA_DIR": str(tmp_path / "box"), "VOXERON_MQTT_URL": url,
           "VOXERON_HEALTH_INTERVAL_S": "0.5", "VOXERON_ACK_TIMEOUT_S": "2"}
    return subprocess.Popen([sys.executable, "-m", "voxeron", "appliance", "sync"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _online(db: CloudDb, tenant_id: str) -> bool | None:
    devices = db.devices(tenant_id)
    return devices[0].online if devices else None


def _clear_status(url: str, tenant_id: str, device_id: str) -> None:
    link = device_link(url)
    link.connect(timeout=5)
    link.publish(DeviceTopics(tenant_id, device_id).status, b"", qos=1, retain=True)
    link.close()


def test_killed_sync_process_goes_offline_by_last_will(tmp_path: Path, broker_url: str) -> None:
    tenant_id, device_id = new_id("ten"), new_id("dev")
    store = LocalStore(tmp_path / "box" / "box.sqlite3")
    order, _ = store.submit_order(
        tenant_id=tenant_id, device_id=device_id, call_id=new_id("call"), caller=None,
        lines=[OrderLine(line_id="l1", item_id="coke", name="Coke", quantity=1,
                         unit_price_cents=250)],
        currency="USD", blueprint_hash="bp", idempotency_key=new_id("job"), now=datetime.now(UTC),
    )
    with running_ingest(tmp_path, broker_url) as cloud:
        proc = _start_sync(tmp_path, broker_url, tenant_id, device_id)
        try:
            wait_until(lambda: store.outbox_depth() == 0, what="outbox drained by the process")
            assert cloud.order(order.order_id) is not None
            wait_until(lambda: _online(cloud, tenant_id) is True, what="device online")
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            wait_until(lambda: _online(cloud, tenant_id) is False, timeout=30,
                       what="offline status from the last will")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            _clear_status(broker_url, tenant_id, device_id)
    store.close()


def test_sigterm_stops_sync_process_cleanly(tmp_path: Path) -> None:
    tenant_id, device_id = new_id("ten"), new_id("dev")
    with running_ingest(tmp_path, MOSQUITTO) as cloud:
        proc = _start_sync(tmp_path, MOSQUITTO, tenant_id, device_id)
        try:
            wait_until(lambda: _online(cloud, tenant_id) is True, what="device online")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
            wait_until(lambda: _online(cloud, tenant_id) is False, what="offline on SIGTERM")
            stderr = proc.stderr.read().decode() if proc.stderr else ""
            assert '"msg": "voxeron-sync stopped"' in stderr
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            _clear_status(MOSQUITTO, tenant_id, device_id)
