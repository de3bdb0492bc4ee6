"""Cloud ingest on a real broker for integration tests, ready only once it is subscribed."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cloud.config import CloudConfig
from cloud.control.db import CloudDb
from cloud.control.ingest import Ingest, ingest_link
from sync.contracts.messages import DeviceStatus
from sync.ids import new_id
from sync.mqtt_link import BrokerAddress, MqttLink
from sync.topics import DeviceTopics


def wait_until(check: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def device_link(url: str) -> MqttLink:
    """A throwaway device-side client (clean session, so nothing lingers on the broker)."""
    return MqttLink(BrokerAddress.from_url(url), new_id("dev"), clean_session=True)


def cloud_config(db_path: Path, url: str) -> CloudConfig:
    return CloudConfig(db_path=db_path, mqtt_url=url, ingest_client_id=new_id("job"),
                       ingest_clean_session=True)


@contextlib.contextmanager
def running_ingest(cfg: CloudConfig) -> Iterator[tuple[CloudDb, Ingest]]:
    """Cloud ingest into cfg's database; yields once a probe device's status was stored."""
    db = CloudDb.for_config(cfg)
    ingest = Ingest(db, ingest_link(cfg))
    ingest.start()
    try:
        probe = DeviceStatus(tenant_id=new_id("ten"), device_id=new_id("dev"), online=True)
        with contextlib.closing(device_link(cfg.mqtt_url)) as link:
            link.connect()
            topic = DeviceTopics(probe.tenant_id, probe.device_id).status

            def probed() -> bool:
                link.publish(topic, probe, qos=1)
                return bool(db.devices(probe.tenant_id))
            wait_until(probed, what="ingest subscriptions")
        yield db, ingest
    finally:
        ingest.stop()
        db.close()
