"""Device health history: every health report kept for `health_history_days`, per device.

The latest report lives on the `devices` row (the fleet page); this is the series behind
it, so ops can see a box flapping, its outbox filling or its disk shrinking over the day.
A report is stored once per (tenant, device, `at`): the box's resend is not a new point.
Statements run in a tenant scope (RLS on PostgreSQL); the prune schedule is a pure object
that is handed the time, so tests drive it without a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from cloud.db import Transaction
from sync.contracts.messages import Health

PRUNE_EVERY = timedelta(hours=1)
DEFAULT_LIMIT = 288
MAX_LIMIT = 1000


def _iso(t: datetime) -> str:
    """Stored timestamps: UTC, milliseconds, sortable text; a naive time is taken as UTC."""
    aware = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds")


class HealthPoint(BaseModel):
    """One stored health report: the box's figures at `at`, and when the cloud got it."""

    at: datetime
    received_at: datetime
    outbox_depth: int
    printer: Literal["ok", "offline", "paper_out", "cover_open", "unknown"]
    firmware: str
    disk_free_bytes: int | None
    outbox_oldest_age_s: float | None
    print_pending: int | None
    print_dead_lettered: int | None
    alerts: list[str]


class DeviceHealthHistory(BaseModel):
    """A device's health reports, newest first (GET .../devices/{device_id}/health)."""

    tenant_id: str
    device_id: str
    since: datetime | None = Field(description="only reports at or after this time")
    limit: int = Field(description="at most this many reports, the newest ones")
    reports: list[HealthPoint]


def append_health(tx: Transaction, health: Health, now: datetime) -> bool:
    """Store the report in the history; False if this (device, at) is stored already."""
    return tx.execute(
        "INSERT INTO device_health(tenant_id, device_id, at, received_at, outbox_depth, "
        "disk_free_bytes, printer, body) VALUES (:tenant_id, :device_id, :at, :received_at, "
        ":outbox_depth, :disk_free_bytes, :printer, :body) "
        "ON CONFLICT (tenant_id, device_id, at) DO NOTHING",
        {"tenant_id": health.tenant_id, "device_id": health.device_id,
         "at": _iso(health.at), "received_at": _iso(now),
         "outbox_depth": health.outbox_depth, "disk_free_bytes": health.disk_free_bytes,
         "printer": health.printer,
         # usage is the usage tables' business and may hold 256 entries: not per point.
         "body": health.model_dump_json(exclude={"usage"})},
    ) > 0


def device_known(tx: Transaction, device_id: str) -> bool:
    """Whether the scope's tenant enrolled this device or the cloud has heard from it."""
    row = tx.fetch_one(
        "SELECT (SELECT COUNT(*) FROM devices WHERE tenant_id = :tenant_id "
        "AND device_id = :device_id) + (SELECT COUNT(*) FROM enrolled_devices "
        "WHERE tenant_id = :tenant_id AND device_id = :device_id) AS n",
        {"device_id": device_id})
    return bool(row and int(row["n"]) > 0)


def read_history(tx: Transaction, device_id: str, since: datetime | None,
                 limit: int) -> list[HealthPoint]:
    """The device's newest `limit` reports at or after `since`, newest first."""
    after = "AND at >= :since " if since is not None else ""
    params: dict[str, object] = {"device_id": device_id, "limit": limit}
    if since is not None:
        params["since"] = _iso(since)
    rows = tx.fetch_all(
        "SELECT received_at, body FROM device_health WHERE tenant_id = :tenant_id "
        f"AND device_id = :device_id {after}ORDER BY at DESC LIMIT :limit", params)
    return [_point(Health.model_validate_json(r["body"]), str(r["received_at"])) for r in rows]


def _point(h: Health, received_at: str) -> HealthPoint:
    at = h.at if h.at.tzinfo is not None else h.at.replace(tzinfo=UTC)
    return HealthPoint(
        at=at, received_at=datetime.fromisoformat(received_at), outbox_depth=h.outbox_depth,
        printer=h.printer, firmware=h.firmware, disk_free_bytes=h.disk_free_bytes,
        outbox_oldest_age_s=h.outbox_oldest_age_s, print_pending=h.print_pending,
        print_dead_lettered=h.print_dead_lettered, alerts=list(h.alerts))


def tenants_with_history_before(tx: Transaction, before: datetime) -> list[str]:
    """Fleet scope: the tenants that have reports older than `before` (what to prune)."""
    rows = tx.fetch_all("SELECT DISTINCT tenant_id FROM device_health WHERE at < :before "
                        "ORDER BY tenant_id", {"before": _iso(before)})
    return [str(r["tenant_id"]) for r in rows]


def prune_tenant(tx: Transaction, before: datetime) -> int:
    """Delete the scope's tenant's reports older than `before`; how many went."""
    return tx.execute("DELETE FROM device_health WHERE tenant_id = :tenant_id AND at < :before",
                      {"before": _iso(before)})


@dataclass
class PruneSchedule:
    """When ingest prunes the history: on the first report, then at most every `every`."""

    keep: timedelta
    every: timedelta = PRUNE_EVERY
    _last: datetime | None = field(default=None, init=False)

    def due(self, now: datetime) -> datetime | None:
        """The cut-off to prune before if a run is due now (and count it as run), else None."""
        if self._last is not None and now - self._last < self.every:
            return None
        self._last = now
        return now - self.keep
