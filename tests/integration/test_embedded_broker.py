"""The embedded amqtt broker carries what the sync link needs: QoS 1, retained, sessions."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from sync.ids import new_id
from sync.mqtt_link import BrokerAddress, MqttLink
from voxeron.embedded_broker import BrokerStartError, EmbeddedBroker


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(port=0) as b:
        yield b


def _link(url: str, client_id: str | None = None) -> MqttLink:
    return MqttLink(BrokerAddress.from_url(url), client_id or new_id("dev"))


def _inbox(link: MqttLink, topic_filter: str) -> queue.Queue[tuple[str, bytes]]:
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    link.subscribe(topic_filter, lambda t, p: got.put((t, p)), qos=1)
    return got


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_publish_and_subscribe_through_embedded_broker(broker: EmbeddedBroker) -> None:
    assert broker.port > 0 and broker.url == f"mqtt://127.0.0.1:{broker.port}"
    topic = f"vx/v1/t/{new_id('ten')}/d/{new_id('dev')}/up/events"
    sub, pub = _link(broker.url), _link(broker.url)
    got = _inbox(sub, topic)
    sub.connect()
    pub.connect()
    try:
        time.sleep(0.3)  # SUBACK
        pub.publish(topic, b'{"hello": 1}', qos=1)
        assert got.get(timeout=5) == (topic, b'{"hello": 1}')
    finally:
        sub.close()
        pub.close()


def test_retained_message_reaches_a_later_subscriber(broker: EmbeddedBroker) -> None:
    topic = f"vx/v1/t/{new_id('ten')}/d/{new_id('dev')}/status"
    pub = _link(broker.url)
    pub.connect()
    pub.publish(topic, b"online", qos=1, retain=True)
    pub.close()
    late = _link(broker.url)
    got = _inbox(late, topic)
    late.connect()
    try:
        assert got.get(timeout=5) == (topic, b"online")
    finally:
        late.close()


def test_persistent_session_gets_what_was_published_while_away(broker: EmbeddedBroker) -> None:
    topic = f"vx/v1/t/{new_id('ten')}/d/{new_id('dev')}/down/acks"
    box_id = new_id("dev")
    box = _link(broker.url, box_id)
    _inbox(box, topic)
    box.connect()
    time.sleep(0.3)
    box.close()
    cloud = _link(broker.url)
    cloud.connect()
    cloud.publish(topic, b"ack while the box was away", qos=1)
    cloud.close()
    again = _link(broker.url, box_id)
    got = _inbox(again, topic)
    again.connect()
    try:
        assert got.get(timeout=5) == (topic, b"ack while the box was away")
    finally:
        again.close()


def test_stopped_broker_frees_its_port_and_a_taken_port_is_an_error() -> None:
    first = EmbeddedBroker(port=0).start()
    port = first.port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        with pytest.raises(BrokerStartError):
            EmbeddedBroker(port=blocker.getsockname()[1]).start()
    first.stop()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
    with EmbeddedBroker(port=port) as again:
        assert again.port == port


def test_cli_broker_process_serves_and_exits_cleanly_on_sigterm() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxeron", "broker", "run", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ},
    )
    try:
        link = _link(f"mqtt://127.0.0.1:{port}")
        topic = f"vx/v1/t/{new_id('ten')}/d/{new_id('dev')}/up/health"
        got = _inbox(link, topic)
        link.connect(timeout=20)
        time.sleep(0.3)
        link.publish(topic, b"ok", qos=1)
        assert got.get(timeout=5) == (topic, b"ok")
        link.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
