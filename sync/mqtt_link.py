"""The MQTT link used by box and cloud: the one module that touches paho-mqtt.

Callers see typed payloads and our own error type; paho's threads, return codes and
reconnect logic stay here. Publishing waits for the broker's PUBACK (QoS 1), so a
return means the broker has the message.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]


class MqttError(RuntimeError):
    """The broker could not be reached or did not accept a publish in time."""


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is and how to authenticate; parsed from mqtt:// or mqtts:// URLs."""

    host: str
    port: int
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @classmethod
    def from_url(cls, url: str, **tls_files: str | None) -> BrokerAddress:
        u = urlparse(url)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise ValueError(f"broker URL must be mqtt://host:port or mqtts://host:port, got {url!r}")
        tls = u.scheme == "mqtts"
        return cls(u.hostname, u.port or (8883 if tls else 1883), tls, **tls_files)


@dataclass(frozen=True)
class LastWill:
    topic: str
    payload: bytes
    retain: bool = True


class MqttLink:
    """A persistent-session MQTT client with blocking publish and handler-based subscribe."""

    def __init__(
        self,
        broker: BrokerAddress,
        client_id: str,
        *,
        will: LastWill | None = None,
        clean_session: bool = False,
    ) -> None:
        self._broker = broker
        self._subs: dict[str, tuple[int, MessageHandler]] = {}
        self._connected = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=paho.MQTTv311,
        )
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        if broker.tls:
            ctx = ssl.create_default_context(cafile=broker.ca_file)
            if broker.cert_file:
                ctx.load_cert_chain(broker.cert_file, broker.key_file)
            self._client.tls_set_context(ctx)
        if will:
            self._client.will_set(will.topic, will.payload, qos=1, retain=will.retain)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    # paho callbacks run on paho's network thread.
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.warning("mqtt connect refused: %s", reason_code)
            return
        for topic, (qos, _) in self._subs.items():
            client.subscribe(topic, qos)
        self._connected.set()
        log.info("mqtt connected to %s:%s", self._broker.host, self._broker.port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        self._connected.clear()
        log.info("mqtt disconnected: %s", reason_code)

    def _on_message(self, client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
        for pattern, (_, handler) in self._subs.items():
            if paho.topic_matches_sub(pattern, msg.topic):
                try:
                    handler(msg.topic, msg.payload)
                except Exception:  # a bad message must never kill the network thread
                    log.exception("handler for %s failed", msg.topic)

    def connect(self, timeout: float = 10.0) -> None:
        """Start the network loop and wait until connected; MqttError if not in `timeout`."""
        try:
            self._client.connect_async(self._broker.host, self._broker.port, keepalive=15)
        except (OSError, ValueError) as exc:
            raise MqttError(f"cannot reach broker {self._broker.host}:{self._broker.port}: {exc}") from exc
        self._client.loop_start()
        if not self._connected.wait(timeout):
            raise MqttError(f"no connection to broker {self._broker.host}:{self._broker.port} in {timeout}s")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def subscribe(self, topic_filter: str, handler: MessageHandler, qos: int = 1) -> None:
        """Register `handler` for a topic filter; survives reconnects."""
        self._subs[topic_filter] = (qos, handler)
        if self._connected.is_set():
            self._client.subscribe(topic_filter, qos)

    def publish(
        self, topic: str, payload: BaseModel | bytes, *, qos: int = 1, retain: bool = False,
        timeout: float = 10.0,
    ) -> None:
        """Publish and, for QoS 1, wait for the broker's PUBACK; MqttError otherwise."""
        body = payload if isinstance(payload, bytes) else payload.model_dump_json().encode()
        info = self._client.publish(topic, body, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS and info.rc != paho.MQTT_ERR_NO_CONN:
            raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        try:
            info.wait_for_publish(timeout)
        except RuntimeError as exc:
            raise MqttError(f"publish to {topic} failed: {exc}") from exc
        if not info.is_published():
            raise MqttError(f"broker did not acknowledge publish to {topic} in {timeout}s")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
