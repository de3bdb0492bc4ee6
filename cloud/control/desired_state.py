"""Desired state per device: versioned in the database, published retained on down/desired.

The database is the cloud's outbox for the downlink: an HTTP request only writes the next
version (or a command); `Downlink`, running beside ingest on its MQTT connection, publishes
what is unpublished. A device connecting later gets the newest version from the broker's
retained message, and a command without an outcome is published again after a while (the
device applies each command id once), so neither a dead broker nor a box that was never
subscribed loses anything.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, model_validator

from cloud.control.db import CloudDb
from cloud.control.tenants import current_policy
from sync.contracts.messages import DesiredState
from sync.mqtt_link import MqttError, MqttLink
from sync.structured_log import fields, log_context
from sync.topics import DeviceTopics

log = logging.getLogger(__name__)


class DesiredRequest(BaseModel):
    """Body of PUT .../desired: the device's next desired state (the cloud picks the version).

    `policy` is refused rather than ignored: it comes from the tenant's row (PATCH the
    tenant), and silently dropping it would mislead the operator who sent it.
    """

    blueprint_overlay: dict[str, Any] | None = None
    menu: dict[str, Any] | None = None
    flags: dict[str, bool] = Field(default_factory=dict)
    routing: dict[str, Any] = Field(default_factory=dict)
    firmware_target: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_policy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "policy" in data:
            raise ValueError("policy is the tenant's: change it with PATCH /api/v1/tenants/{id}")
        return data


class DesiredVersion(BaseModel):
    """Which version a device should run and which it reports to have applied."""

    tenant_id: str
    device_id: str
    desired_version: int
    applied_version: int | None
    status: str | None
    in_sync: bool


def set_desired(db: CloudDb, tenant_id: str, device_id: str, request: DesiredRequest,
                now: datetime) -> DesiredState:
    """Store the device's next desired version; `Downlink` publishes it.

    Every version carries the tenant's policy as stored when it is written, whichever path
    wrote it (rollout, flag, routing, breaker, raw PUT, tenant PATCH): the box enforces
    calls_per_min and retention from the newest document alone. The policy is read inside
    `add_desired`'s transaction, under the device's lock, so a version written while a
    tenant PATCH publishes can never end up newest with the old policy.
    """
    desired = db.add_desired(tenant_id, device_id, lambda version, tx: DesiredState(
        tenant_id=tenant_id, device_id=device_id, version=version, issued_at=now,
        policy=current_policy(tx), **request.model_dump()), now)
    log.info("desired state set", extra=fields(tenant_id=tenant_id, device_id=device_id,
                                               version=desired.version))
    return desired


def desired_versions(db: CloudDb, tenant_id: str | None = None) -> list[DesiredVersion]:
    """Every device with a desired state: the version wanted and the version applied."""
    return [DesiredVersion(tenant_id=t, device_id=d, desired_version=want, applied_version=got,
                           status=status, in_sync=got == want)
            for t, d, want, got, status in db.desired_versions(tenant_id)]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Downlink:
    """Publishes unpublished desired states (retained) and open commands from the database."""

    def __init__(self, db: CloudDb, link: MqttLink, *, poll_s: float = 0.5,
                 resend_after_s: float = 60.0, publish_timeout_s: float = 10.0,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self._db, self._link = db, link
        self.poll_s, self.resend_after_s = poll_s, resend_after_s
        self._timeout = publish_timeout_s
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cloud-downlink", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """Publish soon (something was just written)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._link.connected:
                try:
                    self.publish_pending()
                except Exception:  # the rows stay unpublished; the next pass tries again
                    log.exception("downlink pass failed")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def publish_pending(self) -> int:
        """One pass; returns how many messages the broker took."""
        sent = 0
        for desired in self._db.unpublished_desired():
            topics = DeviceTopics(desired.tenant_id, desired.device_id)
            with log_context(tenant_id=desired.tenant_id, device_id=desired.device_id):
                try:
                    self._link.publish(topics.desired, desired, qos=1, retain=True,
                                       timeout=self._timeout)
                except MqttError as exc:
                    log.warning("desired state publish failed: %s", exc)
                    return sent
                self._db.mark_desired_published(desired, self._clock())
                log.info("desired state published", extra=fields(version=desired.version))
                sent += 1
        resend_before = self._clock() - timedelta(seconds=self.resend_after_s)
        for command in self._db.commands_to_publish(resend_before):
            topics = DeviceTopics(command.tenant_id, command.device_id)
            with log_context(tenant_id=command.tenant_id, device_id=command.device_id,
                             order_id=command.order_id):
                try:
                    self._link.publish(topics.commands, command, qos=1, timeout=self._timeout)
                except MqttError as exc:
                    log.warning("command publish failed: %s", exc)
                    return sent
                self._db.mark_command_published(command.command_id, self._clock())
                log.info("command published", extra=fields(command_id=command.command_id,
                                                           kind=command.kind))
                sent += 1
        return sent
