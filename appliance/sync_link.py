"""voxeron-sync: drains the box's outbox to the cloud over MQTT and reports the box's health.

The outbox in SQLite is the source of truth: an event leaves it only when the cloud's ack
arrives, so a broker outage, a crash or a lost ack costs a resend, never an event. The
decisions live in `OutboxDrain`; this module is the I/O loop around it.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from pydantic import ValidationError

from appliance.config import BoxIdentity, SyncConfig, VoiceConfig
from appliance.desired_blueprint import DesiredComposer
from appliance.outbox_drain import OutboxDrain, Publish
from appliance.store import LocalStore
from appliance.sync_downlink import BoxDownlink
from sync.contracts.messages import Ack, DeviceStatus, Health
from sync.mqtt_link import BrokerAddress, LastWill, MqttError, MqttLink
from sync.structured_log import bind, fields, log_context, setup_logging
from sync.topics import DeviceTopics

log = logging.getLogger(__name__)

# Upper bound of one loop sleep, so health stays on time during long ack or backoff waits.
_MAX_SLEEP_S = 1.0
_FAILED_STEP_PAUSE_S = 5.0


def _firmware_version() -> str:
    try:
        return version("voxeron")
    except PackageNotFoundError:
        return "dev"


def box_link(identity: BoxIdentity, cfg: SyncConfig) -> MqttLink:
    """The box's MQTT client: client id = device id, persistent session, offline last will."""
    topics = DeviceTopics(identity.tenant_id, identity.device_id)
    offline = DeviceStatus(tenant_id=identity.tenant_id, device_id=identity.device_id, online=False)
    broker = BrokerAddress.from_url(
        cfg.mqtt_url, ca_file=cfg.mqtt_ca_file, cert_file=cfg.mqtt_cert_file,
        key_file=cfg.mqtt_key_file,
    )
    return MqttLink(
        broker, identity.device_id, clean_session=False,
        will=LastWill(topics.status, offline.model_dump_json().encode(), retain=True),
    )


class HealthSchedule:
    """When to report health: every `interval_s`, and within `min_gap_s` of a depth change.

    The dashboard then shows a drained outbox as soon as it drains, not an interval later.
    """

    def __init__(self, interval_s: float, min_gap_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.min_gap_s = min(min_gap_s, interval_s)
        self._last_at: float | None = None
        self._last_depth: int | None = None

    def due(self, outbox_depth: int, now: float) -> bool:
        if self._last_at is None:
            return True
        elapsed = now - self._last_at
        return elapsed >= self.interval_s or (
            outbox_depth != self._last_depth and elapsed >= self.min_gap_s)

    def sent(self, outbox_depth: int, now: float) -> None:
        self._last_at = now
        self._last_depth = outbox_depth

    def reset(self) -> None:
        """Report at once on the next connection."""
        self._last_at = None


class SyncLink:
    """The box side of sync: outbox -> up/events, down/acks -> outbox acked, plus status/health."""

    def __init__(
        self, store: LocalStore, link: MqttLink, identity: BoxIdentity,
        cfg: SyncConfig | None = None, *, idle_poll_s: float = 0.5,
        composer: DesiredComposer | None = None,
    ) -> None:
        self.cfg = cfg or SyncConfig()
        self._store = store
        self._link = link
        self._identity = identity
        self._topics = DeviceTopics(identity.tenant_id, identity.device_id)
        self._drain = OutboxDrain(self.cfg.ack_timeout_s, idle_poll_s=idle_poll_s)
        self._acks: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._health = HealthSchedule(self.cfg.health_interval_s)
        self._firmware = _firmware_version()
        link.subscribe(self._topics.acks, self._on_ack_message, qos=1)
        self.downlink = BoxDownlink(store, link, identity, self.cfg, self._wake, composer)

    # Runs on paho's network thread: hand over and return; never block or touch SQLite here.
    def _on_ack_message(self, topic: str, payload: bytes) -> None:
        self._acks.put(payload)
        self._wake.set()

    def run(self, connect_timeout: float = 5.0) -> None:
        """Drain until `stop()`; a broker that is down now is retried in the background."""
        with log_context(tenant_id=self._identity.tenant_id, device_id=self._identity.device_id):
            try:
                self._link.connect(connect_timeout)
            except MqttError as exc:
                log.warning("broker not reachable yet, will keep trying: %s", exc)
            try:
                while not self._stop.is_set():
                    try:
                        wait = self.step(time.monotonic())
                    except Exception:  # e.g. SQLite busy: the outbox is still there next pass
                        log.exception("sync step failed; retrying")
                        wait = _FAILED_STEP_PAUSE_S
                    self._wake.wait(wait)
                    self._wake.clear()
            finally:
                self._go_offline()

    def stop(self) -> None:
        """Ask `run()` to return; safe from signal handlers and other threads."""
        self._stop.set()
        self._wake.set()

    def step(self, now: float) -> float:
        """One pass: take acks, announce the box, send what is due; returns seconds to wait."""
        self._take_acks()
        connected = self._link.connected
        self.downlink.step(connected, now)  # desired state, commands, up/reported, pruning
        if not connected:
            self._health.reset()
        else:
            depth = self._store.outbox_depth()
            if self._health.due(depth, now):
                self._announce(depth, now)
        pending = self._store.pending_events(limit=self._drain.window)
        decision = self._drain.next_step(pending, connected, now)
        if not isinstance(decision, Publish):
            return min(decision.seconds, _MAX_SLEEP_S)
        first, last = decision.events[0], decision.events[-1]
        span = fields(seq=first.seq, last_seq=last.seq, count=len(decision.events),
                      attempt=decision.attempt)
        # One connection, in seq order. No waiting for PUBACKs: OutboxDrain's window bounds
        # what is outstanding, and the cloud's ack (or its timeout) is what counts.
        with log_context(event_id=first.event_id, order_id=first.correlation.order_id):
            try:
                self._link.publish_many([(self._topics.events, e) for e in decision.events],
                                        qos=1, timeout=self.cfg.ack_timeout_s, wait=False)
            except MqttError as exc:
                delay = self._drain.publish_failed(time.monotonic())
                log.warning("publish of events failed, retrying in %.1fs: %s", delay, exc,
                            extra=span)
                return min(delay, _MAX_SLEEP_S)
            self._drain.published(decision, time.monotonic())
            log.info("events published", extra=span)
        return 0.0

    def _take_acks(self) -> None:
        acks: list[Ack] = []
        while True:
            try:
                payload = self._acks.get_nowait()
            except queue.Empty:
                break
            try:
                acks.append(Ack.model_validate_json(payload))
            except ValidationError as exc:
                log.error("dropping malformed ack", extra=fields(error=str(exc)[:300]))
        if not acks:
            return
        for ack in acks:
            self._log_ack(ack)
        # All acks that arrived together are marked in one transaction (one fsync).
        self._store.mark_acked_many([a.event_id for a in acks], datetime.now(UTC))
        for ack in acks:
            self._drain.ack_received(ack)

    def _log_ack(self, ack: Ack) -> None:
        with log_context(event_id=ack.event_id):
            if ack.status == "rejected":
                # Kept acked so one bad event cannot block the queue; the log carries why.
                error = ack.error.model_dump(mode="json") if ack.error else None
                log.error("cloud rejected event; marking it done", extra=fields(
                    seq=ack.seq, error=error))
            else:
                log.info("event acked", extra=fields(seq=ack.seq, status=ack.status))

    def _announce(self, depth: int, now: float) -> None:
        """Health, with the retained online status again (a reconnect we did not see may
        have left the last will's offline there)."""
        at = datetime.now(UTC)
        ids = {"tenant_id": self._identity.tenant_id, "device_id": self._identity.device_id}
        try:
            self._link.publish(self._topics.status, DeviceStatus(**ids, online=True, at=at),
                               qos=1, retain=True, timeout=self.cfg.ack_timeout_s)
            health = Health(**ids, at=at, outbox_depth=depth, firmware=self._firmware,
                            **self.downlink.health_figures(at))
            self._link.publish(self._topics.health, health, qos=1,
                               timeout=self.cfg.ack_timeout_s)
        except MqttError as exc:
            log.warning("status/health publish failed: %s", exc)
            return
        self._health.sent(depth, now)

    def _go_offline(self) -> None:
        """A clean disconnect fires no last will, so say offline ourselves first."""
        if self._link.connected:
            offline = DeviceStatus(tenant_id=self._identity.tenant_id,
                                   device_id=self._identity.device_id, online=False,
                                   at=datetime.now(UTC))
            try:
                self._link.publish(self._topics.status, offline, qos=1, retain=True, timeout=2.0)
            except MqttError as exc:
                log.warning("offline status publish failed: %s", exc)
        self._link.close()


def run_sync(identity: BoxIdentity, cfg: SyncConfig) -> None:
    """The voxeron-sync process: drain the outbox until SIGTERM or SIGINT."""
    setup_logging("sync")
    bind(tenant_id=identity.tenant_id, device_id=identity.device_id)
    store = LocalStore(identity.db_path)
    voice = VoiceConfig()
    sync = SyncLink(store, box_link(identity, cfg), identity, cfg,
                    composer=DesiredComposer(voice.sector, voice.tenant_overlay, voice.runtime_policy))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sync.stop())
    log.info("voxeron-sync starting", extra=fields(mqtt_url=cfg.mqtt_url))
    try:
        sync.run()
    finally:
        store.close()
        log.info("voxeron-sync stopped")
