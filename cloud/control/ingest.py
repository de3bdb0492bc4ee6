"""Cloud ingest: the fleet's up topics into the database, each event acked after commit.

A payload that is not JSON is logged and dropped (no id to ack, nothing to store); one
that is JSON but breaks the contract, or claims another device than its topic, gets a
'rejected' ack so the box moves on. Messages are handled on one worker thread: paho's
network thread only enqueues, because a blocking ack publish there would deadlock.

The worker group-commits: it takes everything queued (up to `_BATCH_MAX`), stores the
events in one transaction (a few set-based statements, `event_store`), and only then
publishes their acks and PUBACKs the broker, so an acked event is on disk. At fleet
rates most of what is left is paho's cost per MQTT packet (docs/benchmarks.md). With a
share group, several ingest replicas split the events between them (`$share/<group>/...`);
see docs/sync.md for ordering and failover.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import ValidationError

from cloud.config import CloudConfig
from cloud.control.db import CloudDb
from cloud.control.desired_state import Downlink
from cloud.control.health_history import PruneSchedule
from cloud.control.reconcile import reconcile_device
from sync.contracts.errors import Correlation, ErrorEnvelope
from sync.contracts.events import EventEnvelope
from sync.contracts.messages import Ack, DeviceStatus, Health, ReportedState
from sync.mqtt_link import BrokerAddress, Delivery, MqttError, MqttLink, shared_filter
from sync.structured_log import fields, log_context
from sync.topics import (
    ALL_EVENTS,
    ALL_HEALTH,
    ALL_REPORTED,
    ALL_STATUS,
    DeviceTopics,
    parse_device_topic,
)

log = logging.getLogger(__name__)

_Msg = TypeVar("_Msg", DeviceStatus, Health, ReportedState)
# Messages per group commit: big enough to amortise the fsync, small enough that the
# first event of a batch does not wait long for its ack.
_BATCH_MAX = 500
_BATCH_ATTEMPTS = 3
_BATCH_RETRY_S = 0.2


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
    try:  # the common case in one pass; anything wrong is classified below
        event = EventEnvelope.model_validate_json(payload)
    except ValidationError:
        pass
    else:
        if (event.tenant_id, event.device_id) == (tenant_id, device_id):
            return Accept(event)
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
                 clock: Callable[[], datetime] = _utcnow, *, share_group: str | None = None,
                 on_events: Callable[[list[EventEnvelope], datetime], object] | None = None,
                 on_health: Callable[[Health, datetime], object] | None = None,
                 health_history_days: int = 14,
                 ) -> None:
        self._db = db
        # Called with every accepted event of a batch after its commit and before its acks
        # (the integration plane's order inbox): if it raises, nothing is acked and the box's
        # resend brings the batch back; both sides store by event id, so that is safe.
        self._on_events = on_events
        self._on_health = on_health  # after the report is stored (usage and cost caps)
        self._health_prune = PruneSchedule(keep=timedelta(days=health_history_days))
        self._link = link
        self._clock = clock
        self._inbox: queue.Queue[tuple[str, bytes, Delivery] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        # Status stays a plain subscription on every replica: brokers send no retained
        # messages to shared subscriptions, and recording a status twice is harmless.
        for topic_filter in (shared_filter(share_group, ALL_EVENTS), ALL_STATUS,
                             shared_filter(share_group, ALL_HEALTH),
                             shared_filter(share_group, ALL_REPORTED)):
            link.subscribe_acked(topic_filter, self._enqueue, qos=1)
        self.downlink = Downlink(db, link)  # desired states and commands, from the db

    def _enqueue(self, topic: str, payload: bytes, delivery: Delivery) -> None:
        self._inbox.put((topic, payload, delivery))

    def start(self, connect_timeout: float = 10.0) -> None:
        """Start the worker and connect; a broker that is down now is retried in the background."""
        self._worker = threading.Thread(target=self._work, name="cloud-ingest", daemon=True)
        self._worker.start()
        self.downlink.start()
        try:
            self._link.connect(connect_timeout)
        except MqttError as exc:
            log.warning("broker not reachable yet, will keep trying: %s", exc)

    def stop(self, timeout: float = 10.0) -> None:
        """Disconnect, then finish what is already queued."""
        self.downlink.stop()
        self._link.close()
        if self._worker is not None:
            self._inbox.put(None)
            self._worker.join(timeout)
            self._worker = None

    def _work(self) -> None:
        stopping = False
        while not stopping:
            batch: list[tuple[str, bytes, Delivery]] = []
            item = self._inbox.get()
            while item is not None:
                batch.append(item)
                if len(batch) >= _BATCH_MAX:
                    break
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
            stopping = item is None
            self._handle_with_retries([(topic, payload) for topic, payload, _ in batch])
            # PUBACK only now that the batch is durable: until then the broker keeps these
            # messages in flight for our session and redelivers them, in order, if we die.
            for *_, delivery in batch:
                delivery.ack()

    def _handle_with_retries(self, batch: list[tuple[str, bytes]]) -> None:
        """Retry a failed batch (SQLite busy, disk hiccup) before the next, so a transient
        error does not let a device's later events be stored ahead of that batch's."""
        for attempt in range(1, _BATCH_ATTEMPTS + 1):
            try:
                self.handle_batch(batch)
                return
            except Exception:  # a failed batch is not acked; its boxes resend it
                log.exception("ingest of a batch failed", extra=fields(
                    size=len(batch), attempt=attempt, giving_up=attempt == _BATCH_ATTEMPTS))
                if attempt < _BATCH_ATTEMPTS:
                    time.sleep(_BATCH_RETRY_S * attempt)

    def handle(self, topic: str, payload: bytes) -> None:
        """Process one message synchronously (tests call this; the worker batches)."""
        self.handle_batch([(topic, payload)])

    def handle_batch(self, items: list[tuple[str, bytes]]) -> None:
        """Store status/health as they come, all events in one transaction, then the acks."""
        acks: list[tuple[str, Ack | Accept]] = []
        for topic, payload in items:
            try:
                tenant_id, device_id, suffix = parse_device_topic(topic)
            except ValueError:
                log.error("dropping message on a topic that is not a device's",
                          extra=fields(topic=topic))
                continue
            if suffix == "up/events":  # the hot path: its few log lines name the ids
                reply = self._judge_event(tenant_id, device_id, payload)
                if reply is not None:
                    acks.append((DeviceTopics(tenant_id, device_id).acks, reply))
                continue
            with log_context(tenant_id=tenant_id, device_id=device_id):
                if suffix == "status":
                    self._handle_status(tenant_id, device_id, payload)
                elif suffix == "up/health":
                    self._handle_health(tenant_id, device_id, payload)
                elif suffix == "up/reported":
                    self._handle_reported(tenant_id, device_id, payload)
        if acks:
            self._store_and_ack(acks)

    def _judge_event(self, tenant_id: str, device_id: str, payload: bytes) -> Ack | Accept | None:
        """The rejection ack, the event to store, or None for a payload nobody can be told of."""
        verdict = judge_event(tenant_id, device_id, payload)
        if isinstance(verdict, Drop):
            log.error("dropping event payload", extra=fields(
                tenant_id=tenant_id, device_id=device_id, reason=verdict.reason,
                size=len(payload), head=payload[:80].decode("utf-8", "replace")))
            return None
        if isinstance(verdict, Reject):
            ack = verdict.ack
            log.error("rejecting event", extra=fields(
                tenant_id=tenant_id, device_id=device_id, event_id=ack.event_id,
                error=ack.error.model_dump(mode="json") if ack.error else None))
            return ack
        return verdict

    def _store_and_ack(self, replies: list[tuple[str, Ack | Accept]]) -> None:
        """Group commit, then acks in arrival order: durable before acked."""
        accepted = [r.event for _, r in replies if isinstance(r, Accept)]
        now = self._clock()
        outcomes = iter(self._db.ingest_events(accepted, now) if accepted else [])
        if accepted and self._on_events is not None:
            self._on_events(accepted, now)  # duplicates too: a resend may follow a failed hook
        messages: list[tuple[str, Ack | bytes]] = []
        per_event_lines = log.isEnabledFor(logging.DEBUG)  # not their arguments at fleet rates
        for topic, reply in replies:
            if isinstance(reply, Accept):
                event, outcome = reply.event, next(outcomes)
                reply = Ack(event_id=event.event_id, seq=event.seq, status=outcome)
                if per_event_lines:
                    log.debug("event %s", outcome, extra=fields(
                        tenant_id=event.tenant_id, device_id=event.device_id,
                        event_id=event.event_id, seq=event.seq, type=event.data.type))
            messages.append((topic, reply))
        if accepted:  # one line per group commit; per-event lines are at debug level
            log.info("events committed", extra=fields(
                events=len(accepted), devices=len({(e.tenant_id, e.device_id) for e in accepted})))
        # Not waiting for the broker's PUBACKs: an ack lost on the way costs the box a
        # resend, answered 'duplicate', and the worker is free for the next batch.
        try:
            self._link.publish_many(messages, qos=1, wait=False)
        except MqttError as exc:  # stored already; the box resends and gets 'duplicate'
            log.warning("ack publish failed: %s", exc, extra=fields(acks=len(messages)))

    def _handle_status(self, tenant_id: str, device_id: str, payload: bytes) -> None:
        if not payload:
            return  # an empty retained message only clears the topic
        status = self._parse(DeviceStatus, payload, tenant_id, device_id)
        if status is not None:
            self._db.record_status(status, self._clock())

    def _handle_health(self, tenant_id: str, device_id: str, payload: bytes) -> None:
        health = self._parse(Health, payload, tenant_id, device_id)
        if health is not None:
            now = self._clock()
            self._db.record_health(health, now)  # latest state and history, one transaction
            if self._on_health is not None:
                self._on_health(health, self._clock())
            self._prune_health_history(now)

    def _prune_health_history(self, now: datetime) -> None:
        """Drop health reports past retention, at most hourly; a failure waits an hour
        rather than failing the batch (its reports are stored already)."""
        before = self._health_prune.due(now)
        if before is None:
            return
        try:
            deleted = self._db.prune_health(before)
        except Exception:
            log.exception("health history prune failed", extra=fields(before=before.isoformat()))
            return
        for tenant_id, count in deleted.items():
            log.info("health history pruned", extra=fields(
                tenant_id=tenant_id, deleted=count, before=before.isoformat()))

    def _handle_reported(self, tenant_id: str, device_id: str, payload: bytes) -> None:
        """Record what the device has in force, then reconcile its days against ours."""
        reported = self._parse(ReportedState, payload, tenant_id, device_id)
        if reported is not None:
            self._db.record_reported(reported, self._clock())
            if reconcile_device(self._db, reported, self._clock()):
                self.downlink.wake()

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
    # No window on the acks it publishes (0 = unlimited): they are sent as the worker
    # hands them over. paho's window would hold a batch's acks back until the broker's
    # PUBACKs of earlier ones come in, and walk its whole outgoing list on every PUBACK.
    return MqttLink(broker, cfg.ingest_client_id, clean_session=cfg.ingest_clean_session,
                    protocol=cfg.mqtt_protocol, manual_ack=True, max_inflight=0)
