"""Cloud data retention: delete each tenant's old events and finished actions, nothing else.

Per tenant, from its `Retention`:
- `events_days`: the box events ingest stored (`events`) and the order events the
  integration plane keeps for replay (`integration_order_events`), by arrival time;
- `actions_days`: integration actions in a terminal state (succeeded, dead_lettered,
  cancelled, superseded) with their transition events, by the time they last changed.

Never deleted: open actions (pending, in_flight, retry_scheduled) and the order events they
may be replayed from; anything younger than `RETENTION_FLOOR_DAYS` (32), whatever the
tenant set, because a box reports and resyncs up to 31 UTC days and the cloud must still
recognise those days' event ids (so `events_days: 0` keeps 32 days in the cloud); and the
audit log, which is never pruned. Ingest's own orders, devices and commands are not touched.

On PostgreSQL the app role has no DELETE grant on these append-only tables; it calls
`voxeron_retention_prune` (migration 8), a SECURITY DEFINER function granted to it alone
that applies the same rules inside the database, against the database clock, for the
tenant of the calling transaction only. On SQLite (one node, no roles) the same deletes
run here. Both delete in batches, each in its own short transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel

from cloud.control.tenants import Retention
from cloud.db import Database, Transaction, iso, json_value
from cloud.db.schema import RETENTION_FLOOR_DAYS
from sync.structured_log import fields

log = logging.getLogger(__name__)

TERMINAL_STATES = ("succeeded", "dead_lettered", "cancelled", "superseded")
OPEN_STATES = ("pending", "in_flight", "retry_scheduled")
DEFAULT_BATCH = 2000


class PruneCounts(BaseModel):
    """What one tenant's pass deleted, and the cut-offs it used (after the floor)."""

    tenant_id: str
    events_before: datetime
    actions_before: datetime
    events: int = 0
    order_events: int = 0
    actions: int = 0
    action_events: int = 0

    @property
    def total(self) -> int:
        return self.events + self.order_events + self.actions + self.action_events


def cutoffs(retention: Retention, now: datetime) -> tuple[datetime, datetime]:
    """(events older than this go, finished actions older than this go), never later
    than `now - RETENTION_FLOOR_DAYS`."""
    floor = now - timedelta(days=RETENTION_FLOOR_DAYS)
    return (min(now - timedelta(days=retention.events_days), floor),
            min(now - timedelta(days=retention.actions_days), floor))


def _in(states: tuple[str, ...]) -> str:
    return ", ".join(f"'{s}'" for s in states)


def _prune_sqlite(tx: Transaction, events_before: datetime, actions_before: datetime,
                  batch: int) -> tuple[int, int, int, int]:
    """The SQLite twin of `voxeron_retention_prune` (schema migration 8)."""
    events = tx.execute(
        "DELETE FROM events WHERE event_id IN (SELECT event_id FROM events "
        "WHERE tenant_id = :tenant_id AND received_at < :before LIMIT :batch)",
        {"before": iso(events_before), "batch": batch})
    order_events = tx.execute(
        "DELETE FROM integration_order_events WHERE event_id IN (SELECT o.event_id FROM "
        "integration_order_events o WHERE o.tenant_id = :tenant_id AND o.recorded_at < :before "
        "AND NOT EXISTS (SELECT 1 FROM integration_actions a WHERE a.tenant_id = :tenant_id "
        "AND a.order_id IN (o.order_id, o.replacement_order_id) "
        f"AND a.state IN ({_in(OPEN_STATES)})) LIMIT :batch)",
        {"before": events_before, "batch": batch})
    doomed = [r["action_id"] for r in tx.fetch_all(
        "SELECT action_id FROM integration_actions WHERE tenant_id = :tenant_id "
        f"AND state IN ({_in(TERMINAL_STATES)}) AND updated_at < :before "
        "ORDER BY updated_at LIMIT :batch", {"before": actions_before, "batch": batch})]
    action_events = actions = 0
    for action_id in doomed:  # BEGIN IMMEDIATE holds the file: nothing revives them meanwhile
        action_events += tx.execute(
            "DELETE FROM integration_action_events WHERE tenant_id = :tenant_id "
            "AND action_id = :action_id", {"action_id": action_id})
        actions += tx.execute(
            "DELETE FROM integration_actions WHERE tenant_id = :tenant_id "
            "AND action_id = :action_id", {"action_id": action_id})
    return events, order_events, actions, action_events


def _prune_postgres(tx: Transaction, events_before: datetime, actions_before: datetime,
                    batch: int) -> tuple[int, int, int, int]:
    row = tx.fetch_one(
        "SELECT * FROM voxeron_retention_prune(:tenant_id, :events_before, :actions_before, "
        ":batch)", {"events_before": events_before, "actions_before": actions_before,
                    "batch": batch})
    assert row is not None  # the function always returns its one row
    return (int(row["deleted_events"]), int(row["deleted_order_events"]),
            int(row["deleted_actions"]), int(row["deleted_action_events"]))


def prune_tenant(db: Database, tenant_id: str, retention: Retention, now: datetime,
                 batch: int = DEFAULT_BATCH) -> PruneCounts:
    """Delete what `retention` no longer keeps of one tenant, batch by batch."""
    events_before, actions_before = cutoffs(retention, now)
    counts = PruneCounts(tenant_id=tenant_id, events_before=events_before,
                         actions_before=actions_before)
    while True:
        with db.tenant(tenant_id) as tx:
            prune = _prune_postgres if tx.dialect == "postgresql" else _prune_sqlite
            got = prune(tx, events_before, actions_before, batch)
        counts.events += got[0]
        counts.order_events += got[1]
        counts.actions += got[2]
        counts.action_events += got[3]
        if max(got[0], got[1], got[2]) < batch:
            return counts


def tenant_retentions(db: Database) -> list[tuple[str, Retention]]:
    """Every tenant and its retention (a fleet read). Rows of a tenant without a tenants
    row have no retention set and are kept."""
    with db.fleet(readonly=True) as tx:
        rows = tx.fetch_all("SELECT tenant_id, retention FROM tenants ORDER BY tenant_id")
    return [(r["tenant_id"], Retention.model_validate(json_value(r["retention"])))
            for r in rows]


def run_retention(db: Database, now: datetime, batch: int = DEFAULT_BATCH,
                  ) -> list[PruneCounts]:
    """One retention pass over every tenant; logs each tenant's counts with its id. A
    tenant that fails is logged and skipped, the others still run."""
    done: list[PruneCounts] = []
    for tenant_id, retention in tenant_retentions(db):
        try:
            counts = prune_tenant(db, tenant_id, retention, now, batch)
        except Exception:  # one tenant's failure must not stop the others' retention
            log.exception("retention failed for a tenant", extra=fields(tenant_id=tenant_id))
            continue
        log.info("retention pass", extra=fields(
            tenant_id=tenant_id, events=counts.events, order_events=counts.order_events,
            actions=counts.actions, action_events=counts.action_events,
            events_before=counts.events_before.isoformat(),
            actions_before=counts.actions_before.isoformat()))
        done.append(counts)
    return done


@dataclass
class RetentionSchedule:
    """When the next pass is due: at the first check, then every `every_s` seconds
    (0 = never). Pure: the caller passes the time."""

    every_s: float
    next_at: datetime | None = None

    def due(self, now: datetime) -> bool:
        """True (and the next pass scheduled) if a pass should run at `now`."""
        if self.every_s <= 0:
            return False
        if self.next_at is not None and now < self.next_at:
            return False
        self.next_at = now + timedelta(seconds=self.every_s)
        return True
