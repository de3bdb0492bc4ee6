"""Reconciliation: the cloud compares each device's reported day figures with its own
orders for that day and answers divergence with commands; the cloud's record wins.

- The box holds orders or printed tickets the cloud lacks, or a cancellation the cloud
  has not seen: events went missing (a restored cloud database, a lost ack) -> `resync`
  of that day; the box re-sends the day and idempotent ingest fills the gaps.
- The cloud holds an order as cancelled and the box does not -> `cancel` again.
A day the box is still draining (pending events) is skipped, and a command of the same
kind and target still waiting for its outcome is not issued twice, and a day gets at most
MAX_RESYNCS_PER_DAY resyncs. What no command can
heal (the cloud has an order the box never had) is logged for people.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

from cloud.control.db import CloudDb
from sync.contracts.messages import Command, CommandKind, DaySummary, ReportedState, day_digest
from sync.ids import new_id
from sync.structured_log import fields, log_context

log = logging.getLogger(__name__)

# A day that still differs after this many resyncs holds something a resync cannot heal
# (e.g. an event the cloud rejects); asking again would only loop.
MAX_RESYNCS_PER_DAY = 3


def issue_command(db: CloudDb, tenant_id: str, device_id: str, kind: CommandKind, now: datetime,
                  *, order_id: str | None = None, day: date | None = None, reason: str = "",
                  origin: str = "api") -> Command:
    """Store a new command for the downlink; a cancel also marks the cloud's order cancelled."""
    command = Command(command_id=new_id("cmd"), tenant_id=tenant_id, device_id=device_id,
                      issued_at=now, kind=kind, order_id=order_id, day=day, reason=reason)
    db.add_command(command, origin, now, cancel_order=kind == "cancel")
    log.info("command issued", extra=fields(tenant_id=tenant_id, device_id=device_id,
                                            order_id=order_id, command_id=command.command_id,
                                            kind=kind, day=day and day.isoformat(), origin=origin))
    return command


def reconcile_device(db: CloudDb, reported: ReportedState, now: datetime) -> list[Command]:
    """Compare one device's report with the cloud's orders; the commands it issued."""
    tenant_id, device_id = reported.tenant_id, reported.device_id
    history = db.device_commands(tenant_id, device_id)
    open_commands = [c for c, outcome, _ in history if outcome is None]
    resyncs = [c.day for c, _, _ in history if c.kind == "resync"]
    issued: list[Command] = []
    with log_context(tenant_id=tenant_id, device_id=device_id):
        for summary in reported.days:
            if summary.pending_events:
                continue  # still draining: the cloud is behind by design
            issued += _reconcile_day(db, reported, summary, open_commands,
                                     resyncs.count(summary.day), now)
    return issued


def _reconcile_day(db: CloudDb, reported: ReportedState, box: DaySummary,
                   open_commands: list[Command], resyncs: int, now: datetime) -> list[Command]:
    tenant_id, device_id = reported.tenant_id, reported.device_id
    cloud = db.day_orders(tenant_id, device_id, box.day)
    if day_digest((o, s) for o, s, _ in cloud) == box.digest and \
            sum(p for _, _, p in cloud) == box.tickets_printed:
        return []
    issued: list[Command] = []
    box_cancelled = set(box.cancelled_order_ids)
    cloud_cancelled = {o for o, s, _ in cloud if s == "cancelled"}
    for order_id in sorted(cloud_cancelled - box_cancelled):
        if not _open(open_commands, "cancel", order_id=order_id):
            issued.append(issue_command(db, tenant_id, device_id, "cancel", now,
                                        order_id=order_id, origin="reconcile",
                                        reason="cancelled in the cloud"))
    missing = (box.orders > len(cloud) or box.tickets_printed > sum(p for _, _, p in cloud)
               or bool(box_cancelled - cloud_cancelled))
    if missing and resyncs >= MAX_RESYNCS_PER_DAY:
        log.error("day still diverges after resyncs; needs a person", extra=fields(
            day=box.day.isoformat(), resyncs=resyncs, box_orders=box.orders,
            cloud_orders=len(cloud)))
    elif missing and not _open(open_commands, "resync", day=box.day):
        issued.append(issue_command(db, tenant_id, device_id, "resync", now, day=box.day,
                                    origin="reconcile", reason="cloud misses events of the day"))
    if not issued and not missing and not (cloud_cancelled - box_cancelled):
        log.warning("day diverges in a way no command heals", extra=fields(
            day=box.day.isoformat(), box_orders=box.orders, cloud_orders=len(cloud)))
    elif issued:
        log.warning("day diverges; commands issued", extra=fields(
            day=box.day.isoformat(), box_orders=box.orders, cloud_orders=len(cloud),
            commands=[c.kind for c in issued]))
    return issued


def _open(commands: list[Command], kind: str, *, order_id: str | None = None,
          day: date | None = None) -> bool:
    return any(c.kind == kind and c.order_id == order_id and c.day == day for c in commands)


def reconcile_all(db: CloudDb, now: datetime, tenant_id: str | None = None) -> list[Command]:
    """One pass over every device that has reported (of one tenant, if given)."""
    issued: list[Command] = []
    for reported in db.reported_states(tenant_id):
        issued += reconcile_device(db, reported, now)
    return issued
