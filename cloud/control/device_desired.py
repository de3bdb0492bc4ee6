"""A device's next desired state, composed from everything the control plane governs.

The live rollout version of the device's stage gives overlay and menu (a device without
one keeps the overlay and menu of its current desired state), the resolved flags and the
tenant's routing policy complete it; `firmware_target` carries over and `set_desired` adds
the tenant's policy (quotas and retention the box enforces). Each change that affects
devices (promotion, rollback, flag, routing, stage label, tenant policy) plans the
devices in its own transaction (`plan_devices`), then `publish` writes the next versions
through `desired_state.set_desired` (the downlink publishes them retained) and remembers
which rollout version each carried, so the rollout status can say which devices applied it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from cloud.control.audit import ChangeContext, record
from cloud.control.db import CloudDb
from cloud.control.desired_state import DesiredRequest, set_desired
from cloud.control.flags import published_flags, routing_policy
from cloud.control.rollout import (
    RolloutVersion,
    Stage,
    device_stage,
    get_version,
    live_versions,
    stage_devices,
)
from cloud.db import Database, Transaction
from sync.contracts.messages import DesiredState
from sync.structured_log import fields

log = logging.getLogger(__name__)

DeviceRolloutState = Literal["pending", "applied", "rejected", "superseded"]


class DeviceRollout(BaseModel):
    """One device's progress on a rollout version."""

    device_id: str
    stage: str
    desired_version: int
    applied_version: int | None
    state: DeviceRolloutState
    error: str | None = None


class RolloutStatus(BaseModel):
    """Where a version is live and which of its devices reported it applied."""

    tenant_id: str
    version: int
    promoted_to: list[Stage]
    applied: int
    devices: list[DeviceRollout]


def tenant_devices_to_publish(tx: Transaction, cloud_db: CloudDb) -> list[str]:
    """Every device a tenant-wide change reaches: active enrolled ones and any device that
    already has a desired state."""
    enrolled = tx.fetch_all("SELECT device_id FROM enrolled_devices WHERE tenant_id = :tenant_id "
                            "AND status = 'active'")
    known = {d for _, d, *_ in cloud_db.desired_versions(str(tx.tenant_id))}
    return sorted({str(r["device_id"]) for r in enrolled} | known)


def devices_of_stages(tx: Transaction, stages: Iterable[Stage]) -> list[str]:
    return sorted({d for s in stages for d in stage_devices(tx, s)})


@dataclass(frozen=True)
class Planned:
    """A device's next desired state as composed, before it is written."""

    device_id: str
    stage: Stage | None
    rollout_version: int | None
    request: DesiredRequest


def plan_devices(tx: Transaction, cloud_db: CloudDb,
                 device_ids: Iterable[str]) -> list[Planned]:
    """Compose each device's next desired state in the control transaction `tx`."""
    tenant_id = str(tx.tenant_id)
    live = live_versions(tx)
    routing = routing_policy(tx).policy.published()
    out: list[Planned] = []
    for device_id in device_ids:
        stage = device_stage(tx, device_id)
        version: RolloutVersion | None = (
            get_version(tx, live[stage]) if stage is not None and stage in live else None)
        current = cloud_db.desired_state(tenant_id, device_id)
        if version is not None:
            overlay, menu = version.overlay, version.menu
        else:
            overlay = current.blueprint_overlay if current else None
            menu = current.menu if current else None
        out.append(Planned(device_id, stage, version.version if version else None,
                           DesiredRequest(blueprint_overlay=overlay, menu=menu,
                                          flags=published_flags(tx, device_id), routing=routing,
                                          firmware_target=current.firmware_target
                                          if current else None)))
    return out


def publish(db: Database, cloud_db: CloudDb, ctx: ChangeContext, tenant_id: str,
            plans: list[Planned], reason: str) -> list[DesiredState]:
    """Write the planned desired states (the downlink publishes them), then record which
    rollout version each carried and audit them.

    Called after the control transaction that planned them has committed: on one SQLite
    file the desired-state store and the control plane share the write lock.
    """
    written = [(p, set_desired(cloud_db, tenant_id, p.device_id, p.request, ctx.now))
               for p in plans]
    if not written:
        return []
    with db.tenant(tenant_id) as tx:
        for plan, desired in written:
            if plan.rollout_version is not None and plan.stage is not None:
                tx.execute(
                    "INSERT INTO rollout_deployments (tenant_id, version, device_id, stage, "
                    "desired_version, at) VALUES (:tenant_id, :version, :device_id, :stage, "
                    ":desired_version, :now)",
                    {"version": plan.rollout_version, "device_id": plan.device_id,
                     "stage": plan.stage, "desired_version": desired.version, "now": ctx.now})
            record(tx, ctx, "desired.publish", f"devices/{plan.device_id}/desired", None,
                   {"version": desired.version, "reason": reason,
                    "rollout_version": plan.rollout_version, "flags": desired.flags,
                    "routing": desired.routing,
                    "policy": desired.policy.model_dump() if desired.policy else None})
            log.info("desired state composed", extra=fields(
                tenant_id=tenant_id, device_id=plan.device_id, version=desired.version,
                reason=reason))
    return [d for _, d in written]


def rollout_status(tx: Transaction, cloud_db: CloudDb, version: int) -> RolloutStatus:
    """Per device the version was published to: pending, applied, rejected or superseded
    (a later desired state of that device carries another rollout version)."""
    v = get_version(tx, version)
    rows = tx.fetch_all(
        "SELECT device_id, stage, version, desired_version FROM rollout_deployments "
        "WHERE tenant_id = :tenant_id AND device_id IN (SELECT device_id FROM "
        "rollout_deployments WHERE tenant_id = :tenant_id AND version = :version) "
        "ORDER BY device_id, desired_version", {"version": version})
    latest: dict[str, dict[str, object]] = {}
    mine: dict[str, dict[str, object]] = {}
    for r in rows:
        latest[str(r["device_id"])] = r
        if int(r["version"]) == version:
            mine[str(r["device_id"])] = r
    reports = {r.device_id: r for r in cloud_db.reported_states(v.tenant_id)}
    devices: list[DeviceRollout] = []
    for device_id, row in sorted(mine.items()):
        wanted = int(str(row["desired_version"]))
        report = reports.get(device_id)
        applied = report.applied_version if report else None
        state: DeviceRolloutState = "pending"
        error = None
        if latest[device_id]["version"] != row["version"]:
            state = "superseded"
        elif applied is not None and applied >= wanted:
            state = "applied"
        elif report and report.status == "rejected" and (report.rejected_version or 0) >= wanted:
            state = "rejected"
            error = report.error.message if report.error else None
        devices.append(DeviceRollout(device_id=device_id, stage=str(row["stage"]),
                                     desired_version=wanted, applied_version=applied,
                                     state=state, error=error))
    return RolloutStatus(tenant_id=v.tenant_id, version=version, promoted_to=v.promoted_to,
                         applied=sum(d.state == "applied" for d in devices), devices=devices)
