"""The MQTT link used by box and cloud: the one module that touches paho-mqtt.

Callers see typed payloads and our own error type; paho's threads, return codes and
reconnect logic stay here. Publishing waits for the broker's PUBACK (QoS 1), so a
return means the broker has the message. MQTT 3.1.1 is the default (amqtt speaks only
that); MQTT 5 is an option for brokers that have it. Shared-subscription filters
(`$share/<group>/<filter>`) work with both on Mosquitto 2 and EMQX.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]


class Delivery:
    """A received message whose PUBACK waits for `ack()` on a `manual_ack` link.

    Until then the broker keeps it in flight for this session and redelivers it, in
    order, after a reconnect; so a consumer that acks only once the message is durable
    loses nothing when it dies. Acking twice, or after the connection it came on is
    gone, does nothing (the broker redelivers it on the new one).
    """

    __slots__ = ("_ack", "_done")

    def __init__(self, ack: Callable[[], None] | None) -> None:
        self._ack = ack
        self._done = ack is None

    def ack(self) -> None:
        if not self._done:
            self._done = True
            assert self._ack is not None
            self._ack()


AckedHandler = Callable[[str, bytes, Delivery], None]
MqttProtocol = Literal["3.1.1", "5"]
_ROUTE_CACHE_SIZE = 100_000
SHARE_PREFIX = "$share/"
# MQTT 5 sessions end after this long offline; 3.1.1 persistent sessions never expire.
DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600


def shared_filter(group: str | None, topic_filter: str) -> str:
    """`$share/<group>/<filter>`: the broker hands each message to one member of `group`."""
    if not group:
        return topic_filter
    if any(c in group for c in "/+#"):
        raise ValueError(f"shared-subscription group must not contain / + or #, got {group!r}")
    return f"{SHARE_PREFIX}{group}/{topic_filter}"


def _matching_filter(topic_filter: str) -> str:
    """The plain filter a message topic is matched against (no `$share/<group>/`)."""
    if topic_filter.startswith(SHARE_PREFIX):
        return topic_filter.split("/", 2)[2]
    return topic_filter


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
        protocol: MqttProtocol = "3.1.1",
        session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S,
        max_inflight: int = 100,
        manual_ack: bool = False,
    ) -> None:
        self._broker = broker
        self.protocol = protocol
        self._clean_session = clean_session
        self._session_expiry_s = session_expiry_s
        self._manual_ack = manual_ack
        self._session = 0  # bumped per connection: a Delivery acks only on its own
        self._subs: dict[str, tuple[int, MessageHandler | AckedHandler, bool]] = {}
        # topic -> (handler, takes a Delivery), see _on_message
        self._routes: dict[str, list[tuple[MessageHandler | AckedHandler, bool]]] = {}
        self._connected = threading.Event()
        if protocol == "5":
            # MQTT 5 has clean_start + session expiry instead of clean_session (see connect).
            self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                       protocol=paho.MQTTv5, manual_ack=manual_ack)
        elif protocol == "3.1.1":
            self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                       clean_session=clean_session, protocol=paho.MQTTv311,
                                       manual_ack=manual_ack)
        else:
            raise ValueError(f"MQTT protocol must be '3.1.1' or '5', got {protocol!r}")
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        # Our own QoS 1 publishes on the wire at once before paho queues (in order) behind them.
        self._client.max_inflight_messages_set(max_inflight)
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
        self._client.on_socket_open = self._on_socket_open

    # paho callbacks run on paho's network thread.
    def _on_socket_open(self, client, userdata, sock) -> None:  # type: ignore[no-untyped-def]
        # paho leaves Nagle on: a lone PUBLISH or PUBACK then waits for the peer's delayed
        # ACK (tens of ms), which made stop-and-wait sync crawl at ~11 events/s.
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.warning("mqtt connect refused: %s", reason_code)
            return
        self._session += 1
        for topic, (qos, _, _) in self._subs.items():
            client.subscribe(topic, qos)
        self._connected.set()
        log.info("mqtt connected to %s:%s", self._broker.host, self._broker.port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        self._connected.clear()
        log.info("mqtt disconnected: %s", reason_code)

    def _on_message(self, client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
        topic = msg.topic
        handlers = self._routes.get(topic)
        if handlers is None:  # filter matching costs more than the rest of a message
            handlers = [(h, acked) for pattern, (_, h, acked) in self._subs.items()
                        if paho.topic_matches_sub(_matching_filter(pattern), topic)]
            if len(self._routes) >= _ROUTE_CACHE_SIZE:
                self._routes.clear()
            self._routes[topic] = handlers
        delivery = self._delivery(msg.mid, msg.qos)
        handed_over = False
        for handler, acked in handlers:
            try:
                if acked:
                    handler(topic, msg.payload, delivery)  # type: ignore[call-arg]
                    handed_over = True
                else:
                    handler(topic, msg.payload)  # type: ignore[call-arg]
            except Exception:  # a bad message must never kill the network thread
                log.exception("handler for %s failed", topic)
                handed_over = False
        if not handed_over:
            delivery.ack()

    def _delivery(self, mid: int, qos: int) -> Delivery:
        if not self._manual_ack or qos == 0:
            return Delivery(None)
        session = self._session

        def ack() -> None:
            if session == self._session:
                self._client.ack(mid, qos)
        return Delivery(ack)

    def connect(self, timeout: float = 10.0) -> None:
        """Start the network loop and wait until connected; MqttError if not in `timeout`."""
        try:
            if self.protocol == "5":
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = 0 if self._clean_session else self._session_expiry_s
                self._client.connect_async(self._broker.host, self._broker.port, keepalive=15,
                                           clean_start=self._clean_session, properties=props)
            else:
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
        self._subscribe(topic_filter, handler, qos, acked=False)

    def subscribe_acked(self, topic_filter: str, handler: AckedHandler, qos: int = 1) -> None:
        """Like `subscribe`, but the handler gets a `Delivery` to ack once it has made the
        message durable (PUBACK then waits for it on a `manual_ack` link)."""
        self._subscribe(topic_filter, handler, qos, acked=True)

    def _subscribe(self, topic_filter: str, handler: MessageHandler | AckedHandler, qos: int,
                   acked: bool) -> None:
        self._subs[topic_filter] = (qos, handler, acked)
        self._routes = {}
        if self._connected.is_set():
            self._client.subscribe(topic_filter, qos)

    def publish(
        self, topic: str, payload: BaseModel | bytes, *, qos: int = 1, retain: bool = False,
        timeout: float = 10.0,
    ) -> None:
        """Publish and, for QoS 1, wait for the broker's PUBACK; MqttError otherwise."""
        self.publish_many([(topic, payload)], qos=qos, retain=retain, timeout=timeout)

    def publish_many(
        self, messages: Sequence[tuple[str, BaseModel | bytes]], *, qos: int = 1,
        retain: bool = False, timeout: float = 10.0, wait: bool = True,
    ) -> None:
        """Publish all, in order on this one connection, then wait for every PUBACK.

        One round trip for a whole batch instead of one per message; MqttError if any is
        not acknowledged in `timeout` (the caller then treats the batch as not sent).
        `wait=False` returns once paho has queued them (it retries QoS 1 itself): for
        messages whose loss the protocol repairs anyway, such as the cloud's acks.
        """
        infos = []
        for topic, payload in messages:
            body = payload if isinstance(payload, bytes) else payload.model_dump_json().encode()
            info = self._client.publish(topic, body, qos=qos, retain=retain)
            if info.rc != paho.MQTT_ERR_SUCCESS and info.rc != paho.MQTT_ERR_NO_CONN:
                raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
            infos.append((topic, info))
        if not wait:
            return
        deadline = time.monotonic() + timeout
        for topic, info in infos:
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except RuntimeError as exc:
                raise MqttError(f"publish to {topic} failed: {exc}") from exc
            if not info.is_published():
                raise MqttError(f"broker did not acknowledge publish to {topic} in {timeout}s")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
