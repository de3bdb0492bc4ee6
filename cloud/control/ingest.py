"""Cloud ingest: the fleet's up topics into the database, each event acked after commit.

A payload that is not JSON is logged and dropped (no id to ack, nothing to store); one
that is JSON but breaks the contract, or claims another device than its topic, gets a
'rejected' ack so the box moves on. Messages are handled on one worker thread: paho's
network thread only enqueues, because a blocking ack publish there would deadlock.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from cloud.config import CloudConfig
from cloud.control.db import CloudDb
from sync.contracts.errors import Correlation, ErrorEnvelope
from sync.contracts.events import EventEnvelope
from sync.contracts.messages import Ack, DeviceStatus, Health
from sync.mqtt_link import BrokerAddress, MqttError, MqttLink
from sync.structured_log import fields, log_context
from sync.topics import ALL_EVENTS, ALL_HEALTH, ALL_STATUS, DeviceTopics, parse_device_topic

log = logging.getLogger(__name__)

_Msg = TypeVar("_Msg", DeviceStatus, Health)


@dataclass(frozen=True)
class Accept:
    """A valid event from the device its topic names."""

    event: EventEnvelope


@dataclass(frozen=True)
class Reject:
    """An identifiable event the cloud refuses; the box gets this ack and moves on."""

    ack: Ack


@dataclass(frozen=True)
class Drop:
    """Nothing to store and no one to answer: log it and carry on."""

    reason: str


EventVerdict = Accept | Reject | Drop


def _rejection(obj: dict[str, Any], tenant_id: str, device_id: str, code: str,
               message: str) -> Reject:
    event_id, seq = obj["event_id"], obj["seq"]
    error = ErrorEnvelope(
        code=code, category="validation", message=message, retryable=False,
        correlation=Correlation(tenant_id=tenant_id, device_id=device_id, event_id=event_id),
    )
    return Reject(Ack(event_id=event_id, seq=seq, status="rejected", error=error))


def judge_event(tenant_id: str, device_id: str, payload: bytes) -> EventVerdict:
    """Decide what to do with a payload that arrived on the events topic of tenant/device."""
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Drop(f"malformed JSON: {exc}")
    if not isinstance(obj, dict):
        return Drop(f"event payload is JSON {type(obj).__name__}, not an object")
    identifiable = (isinstance(obj.get("event_id"), str) and bool(obj["event_id"])
                    and type(obj.get("seq")) is int and obj["seq"] >= 1)
    try:
        event = EventEnvelope.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if not identifiable:
            return Drop(f"invalid event without event_id/seq: {where}: {first['msg']}")
        return _rejection(obj, tenant_id, device_id, "event.invalid",
                          f"event does not match the event schema at {where}: {first['msg']}")
    if (event.tenant_id, event.device_id) != (tenant_id, device_id):
        return _rejection(obj, tenant_id, device_id, "event.topic_mismatch",
                          "event tenant/device differ from the topic it was published on")
    return Accept(event)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Ingest:
    """Subscribes ALL_EVENTS, ALL_STATUS and ALL_HEALTH and writes what arrives to `db`."""

    def __init__(self, db: CloudDb, link: MqttLink,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self._db = db
        self._link = link
        self._clock = clock
        self._inbox: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        for topic_filter in (ALL_EVENTS, ALL_STATUS, ALL_HEALTH):
            link.subscribe(topic_filter, self._enqueue, qos=1)

    def _enqueue(self, topic: str, payload: bytes) -> None:
        self._inbox.put((topic, payload))

    def start(self, connect_timeout: float = 10.0) -> None:
        """Start the worker and connect; a broker that is down now is retried in the background."""
        self._worker = threading.Thread(target=self._work, name="cloud-ingest", daemon=True)
        self._worker.start()
        try:
            self._link.connect(connect_timeout)
        except MqttError as exc:
            log.warning("broker not reachable yet, will keep trying: %s", exc)

    def stop(self, timeout: float = 10.0) -> None:
        """Disconnect, then finish what is already queued."""
        self._link.close()
        if self._worker is not None:
            self._inbox.put(None)
            self._worker.join(timeout)
            self._worker = None

    def _work(self) -> None:
        while (item := self._inbox.get()) is not None:
            try:
                self.handle(*item)
            except Exception:  # one bad message must not stop ingest; the box will resend
                log.exception("ingest of a message failed", extra=fields(topic=item[0]))

    def handle(self, topic: str, payload: bytes) -> None:
        """Process one message synchronously (the worker calls this; so can tests)."""
        tenant_id, device_id, suffix = parse_device_topic(topic)
        with log_context(tenant_id=tenant_id, device_id=device_id):
            if suffix == "up/events":
                self._handle_event(tenant_id, device_id, payload)
            elif suffix == "status":
                self._handle_status(tenant_id, device_id, payload)
            elif suffix == "up/health":
                self._handle_health(tenant_id, device_id, payload)

    def _handle_event(self, tenant_id: str, device_id: str, payload: bytes) -> None:
        verdict = judge_event(tenant_id, device_id, payload)
        if isinstance(verdict, Drop):
            log.error("dropping event payload", extra=fields(
                reason=verdict.reason, size=len(payload), head=payload[:80].decode("utf-8", "replace")))
            return
        if isinstance(verdict, Reject):
            ack = verdict.ack
            log.error("rejecting event", extra=fields(
                event_id=ack.event_id, error=ack.error.model_dump(mode="json") if ack.error else None))
        else:
            event = verdict.event
            outcome = self._db.ingest_event(event, self._clock())
            ack = Ack(event_id=event.event_id, seq=event.seq, status=outcome)
            log.info("event %s", outcome, extra=fields(
                event_id=event.event_id, seq=event.seq, type=event.data.type))
        try:
            self._link.publish(DeviceTopics(tenant_id, device_id).acks, ack, qos=1)
        except MqttError as exc:  # stored already; the box resends and gets 'duplicate'
            log.warning("ack publish failed: %s", exc, extra=fields(event_id=ack.event_id))

    def _handle_status(self, tenant_id: str, device_id: str, payload: bytes) -> None:
        if not payload:
            return  # an empty retained message only clears the topic
        status = self._parse(DeviceStatus, payload, tenant_id, device_id)
        if status is not None:
            self._db.record_status(status, self._clock())

    def _handle_health(self, tenant_id: str, device_id: str, payload: bytes) -> None:
        health = self._parse(Health, payload, tenant_id, device_id)
        if health is not None:
            self._db.record_health(health, self._clock())

    @staticmethod
    def _parse(model: type[_Msg], payload: bytes, tenant_id: str,
               device_id: str) -> _Msg | None:
        try:
            msg = model.model_validate_json(payload)
        except ValidationError as exc:
            log.error("dropping malformed %s", model.__name__, extra=fields(error=str(exc)[:300]))
            return None
        if (msg.tenant_id, msg.device_id) != (tenant_id, device_id):
            log.error("dropping %s for another device than its topic", model.__name__)
            return None
        return msg


def ingest_link(cfg: CloudConfig) -> MqttLink:
    """The ingest's MQTT client as configured (client id, session, TLS client identity)."""
    broker = BrokerAddress.from_url(cfg.mqtt_url, ca_file=cfg.mqtt_ca_file,
                                    cert_file=cfg.mqtt_cert_file, key_file=cfg.mqtt_key_file)
    return MqttLink(broker, cfg.ingest_client_id, clean_session=cfg.ingest_clean_session)
