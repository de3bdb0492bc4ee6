"""MqttLink speaking MQTT 5 to the real Mosquitto: sessions, shared subscriptions, ingest.

3.1.1 stays the default (the embedded amqtt broker has nothing else); these tests pin
down that the v5 option keeps the link's guarantees and that the cloud ingest works on it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from appliance.config import BoxIdentity, SyncConfig
from appliance.store import LocalStore
from appliance.sync_link import SyncLink, box_link
from cloud.config import CloudConfig
from sync.contracts.order import OrderLine
from sync.ids import new_id
from sync.mqtt_link import BrokerAddress, Delivery, MqttLink, shared_filter
from sync.topics import DeviceTopics
from tests.integration.cloud_harness import running_ingest, wait_until

MOSQUITTO = "mqtt://127.0.0.1:1883"


def v5_link(client_id: str | None = None, *, clean: bool = True) -> MqttLink:
    return MqttLink(BrokerAddress.from_url(MOSQUITTO), client_id or new_id("dev"),
                    clean_session=clean, protocol="5")


@contextlib.contextmanager
def connected(link: MqttLink) -> Iterator[MqttLink]:
    link.connect(timeout=5)
    time.sleep(0.2)  # SUBACK before the first publish
    try:
        yield link
    finally:
        link.close()


def _drain(q: queue.Queue[bytes]) -> list[bytes]:
    out = []
    with contextlib.suppress(queue.Empty):
        while True:
            out.append(q.get(timeout=0.5))
    return out


def test_v5_publish_and_subscribe_round_trip() -> None:
    topic = f"vx/test/{new_id('job')}/x"
    got: queue.Queue[bytes] = queue.Queue()
    sub = v5_link()
    sub.subscribe(topic, lambda _t, p: got.put(p), qos=1)
    with connected(sub), connected(v5_link()) as pub:
        assert pub.protocol == "5"
        pub.publish_many([(topic, b"one"), (topic, b"two"), (topic, b"three")], qos=1)
        assert _drain(got) == [b"one", b"two", b"three"]  # in order on one connection


def test_v5_persistent_session_keeps_messages_while_offline() -> None:
    topic = f"vx/test/{new_id('job')}/x"
    client_id = new_id("dev")
    got: queue.Queue[bytes] = queue.Queue()
    first = v5_link(client_id, clean=False)
    first.subscribe(topic, lambda _t, p: got.put(p), qos=1)
    with connected(first):
        pass
    with connected(v5_link()) as pub:
        pub.publish(topic, b"while you were away", qos=1)
    again = v5_link(client_id, clean=False)
    again.subscribe(topic, lambda _t, p: got.put(p), qos=1)
    with connected(again):
        assert _drain(got) == [b"while you were away"]
    with connected(v5_link(client_id, clean=True)):
        pass  # end the session on the shared broker


def test_shared_subscription_gives_each_message_to_one_member() -> None:
    base = f"vx/test/{new_id('job')}"
    group = new_id("job")
    got_a: queue.Queue[bytes] = queue.Queue()
    got_b: queue.Queue[bytes] = queue.Queue()
    a, b = v5_link(), MqttLink(BrokerAddress.from_url(MOSQUITTO), new_id("dev"),
                               clean_session=True)  # a 3.1.1 member in the same group
    a.subscribe(shared_filter(group, f"{base}/+"), lambda _t, p: got_a.put(p), qos=1)
    b.subscribe(shared_filter(group, f"{base}/+"), lambda _t, p: got_b.put(p), qos=1)
    sent = [str(i).encode() for i in range(20)]
    with connected(a), connected(b), connected(v5_link()) as pub:
        pub.publish_many([(f"{base}/{i % 3}", p) for i, p in enumerate(sent)], qos=1)
        seen_a, seen_b = _drain(got_a), _drain(got_b)
    assert sorted(seen_a + seen_b) == sorted(sent)  # every message once, none twice
    assert seen_a and seen_b


def test_bad_protocol_or_share_group_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="protocol"):
        MqttLink(BrokerAddress.from_url(MOSQUITTO), "x", protocol="4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="group"):
        shared_filter("a/b", "vx/#")
    with pytest.raises(ValidationError, match="ingest_share_group"):
        CloudConfig(ingest_share_group="bad/group")
    with pytest.raises(ValidationError, match="mqtt_protocol"):
        CloudConfig(mqtt_protocol="4")  # type: ignore[arg-type]


def test_box_on_311_drains_into_an_ingest_on_v5_in_a_share_group(tmp_path: Path) -> None:
    cfg = CloudConfig(db_path=tmp_path / "cloud.sqlite3", mqtt_url=MOSQUITTO,
                      ingest_client_id=new_id("job"), ingest_clean_session=True,
                      mqtt_protocol="5", ingest_share_group=new_id("job"))
    identity = BoxIdentity(tenant_id=new_id("ten"), device_id=new_id("dev"),
                           data_dir=tmp_path / "box")
    store = LocalStore(identity.db_path)
    for _ in range(5):
        store.submit_order(
            tenant_id=identity.tenant_id, device_id=identity.device_id, call_id=new_id("call"),
            caller=None, currency="USD", blueprint_hash="bp", idempotency_key=new_id("job"),
            lines=[OrderLine(line_id="l1", item_id="coke", name="Coke", quantity=1,
                             unit_price_cents=250)], now=datetime.now(UTC))
    sync_cfg = SyncConfig(mqtt_url=MOSQUITTO, ack_timeout_s=2.0)
    with running_ingest(cfg) as (db, _ingest):
        sync = SyncLink(store, box_link(identity, sync_cfg), identity, sync_cfg, idle_poll_s=0.05)
        thread = threading.Thread(target=sync.run, daemon=True)
        thread.start()
        try:
            wait_until(lambda: store.outbox_depth() == 0, what="outbox drained over v5 ingest")
        finally:
            sync.stop()
            thread.join(10)
        assert len(db.orders(identity.tenant_id)) == 5
    store.close()
    with connected(v5_link()) as link:  # leave no retained status on the shared broker
        link.publish(DeviceTopics(identity.tenant_id, identity.device_id).status, b"",
                     qos=1, retain=True)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_unacked_delivery_is_redelivered_to_the_session_and_an_acked_one_is_not(
    protocol: str,
) -> None:
    topic = f"vx/test/{new_id('job')}/x"
    client_id = new_id("dev")
    got: queue.Queue[tuple[bytes, Delivery]] = queue.Queue()

    def consumer() -> MqttLink:
        link = MqttLink(BrokerAddress.from_url(MOSQUITTO), client_id, clean_session=False,
                        protocol=protocol, manual_ack=True)  # type: ignore[arg-type]
        link.subscribe_acked(topic, lambda _t, p, d: got.put((p, d)), qos=1)
        return link

    with connected(consumer()):
        with connected(v5_link()) as pub:
            pub.publish(topic, b"durable only after commit", qos=1)
        payload, _not_acked = got.get(timeout=5)  # the consumer "dies" before its commit
        assert payload == b"durable only after commit"
    with connected(consumer()):
        payload, delivery = got.get(timeout=5)
        assert payload == b"durable only after commit"  # redelivered to the same session
        delivery.ack()
        time.sleep(0.2)
    with connected(consumer()):
        with pytest.raises(queue.Empty):
            got.get(timeout=1.0)
    with connected(MqttLink(BrokerAddress.from_url(MOSQUITTO), client_id, clean_session=True)):
        pass  # end the session on the shared broker
