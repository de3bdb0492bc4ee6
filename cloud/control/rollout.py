"""Blueprint/menu versions of a tenant: draft, approval by a second person, staged promotion.

A version moves draft -> submitted -> approved (`approve` refuses the author) and is then
promoted dev -> staging -> prod, one stage after the other. Each stage is a label on the
tenant's enrolled devices (`device_stages`); the newest version promoted to a stage is
the one its devices run. Rollback copies an earlier approved version into a new version,
approved and promoted to every stage that has a live version, in one call. The rules
are pure functions (`check_*`) so the refusals are data; every change is audited in the
transaction that makes it. Publishing to the devices is `device_desired`'s job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from cloud.control.audit import ChangeContext, record
from cloud.control.blueprint_upload import (
    DiffEntry,
    DraftUpload,
    parsed_overlay,
    structural_diff,
    validate_upload,
)
from cloud.control.control_errors import ControlError
from cloud.control.devices_registry import get_device
from cloud.db import Transaction, json_value

Stage = Literal["dev", "staging", "prod"]
STAGES: tuple[Stage, ...] = ("dev", "staging", "prod")
VersionState = Literal["draft", "submitted", "approved"]


class RolloutVersion(BaseModel):
    """One version of the tenant's overlay and menu, its approval and where it is live."""

    tenant_id: str
    version: int
    state: VersionState
    sector: str
    base_overlay: str
    overlay: dict[str, Any] | None
    menu: dict[str, Any] | None
    note: str
    author: str
    created_at: datetime
    submitted_at: datetime | None
    approved_by: str | None
    approved_at: datetime | None
    rolled_back_from: int | None
    promoted_to: list[Stage]

    def content(self) -> dict[str, Any]:
        """What a diff compares and a rollback copies."""
        return {"sector": self.sector, "base_overlay": self.base_overlay,
                "overlay": self.overlay, "menu": self.menu}


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: Stage


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_version: int
    note: str = ""


class StageAssignment(BaseModel):
    """Body of PUT .../devices/{device}/stage: the device's stage label (null: none)."""

    model_config = ConfigDict(extra="forbid")

    stage: Stage | None


class VersionDiff(BaseModel):
    tenant_id: str
    from_version: int
    to_version: int
    changes: list[DiffEntry]


def _conflict(code: str, message: str) -> ControlError:
    return ControlError("conflict", code, message)


def check_submit(v: RolloutVersion) -> None:
    if v.state != "draft":
        raise _conflict("rollout.not_draft", f"version {v.version} is {v.state}, not a draft")


def check_approve(v: RolloutVersion, approver: str) -> None:
    """A second person approves a submitted version: never its author."""
    if v.state != "submitted":
        raise _conflict("rollout.not_submitted",
                        f"version {v.version} is {v.state}; submit it for approval first")
    if approver == v.author:
        raise _conflict("rollout.self_approval",
                        f"version {v.version} was written by this principal; a different "
                        "person (token) must approve it")


def check_promote(v: RolloutVersion, stage: Stage) -> None:
    """Approved first; stages in order dev -> staging -> prod, each once."""
    if v.state != "approved":
        raise _conflict("rollout.not_approved",
                        f"version {v.version} is {v.state}; it needs a second person's "
                        "approval before promotion")
    if stage in v.promoted_to:
        raise _conflict("rollout.already_promoted", f"version {v.version} is in {stage} already")
    previous = STAGES[STAGES.index(stage) - 1] if stage != "dev" else None
    if previous is not None and previous not in v.promoted_to:
        raise _conflict("rollout.stage_skipped",
                        f"promote version {v.version} to {previous} before {stage}")


def check_rollback_target(v: RolloutVersion) -> None:
    if v.state != "approved":
        raise _conflict("rollout.not_approved",
                        f"version {v.version} was never approved; roll back to an approved one")


_COLUMNS = ("tenant_id, version, state, sector, base_overlay, overlay, menu, note, author, "
            "created_at, submitted_at, approved_by, approved_at, rolled_back_from")


def _version(tx: Transaction, row: dict[str, Any]) -> RolloutVersion:
    stages = tx.fetch_all("SELECT stage FROM rollout_promotions WHERE tenant_id = :tenant_id "
                          "AND version = :version", {"version": row["version"]})
    got = {str(s["stage"]) for s in stages}
    return RolloutVersion.model_validate({
        **row, "overlay": json_value(row["overlay"]), "menu": json_value(row["menu"]),
        "promoted_to": [s for s in STAGES if s in got]})


def _snapshot(v: RolloutVersion) -> dict[str, Any]:
    """Audit view of a version: its lifecycle fields (the content is in the table)."""
    return v.model_dump(mode="json", exclude={"overlay", "menu"})


def get_version(tx: Transaction, version: int) -> RolloutVersion:
    row = tx.fetch_one(f"SELECT {_COLUMNS} FROM rollout_versions WHERE tenant_id = :tenant_id "
                       "AND version = :version", {"version": version})
    if row is None:
        raise ControlError("not_found", "rollout.not_found", f"no version {version}")
    return _version(tx, row)


def history(tx: Transaction, limit: int = 100) -> list[RolloutVersion]:
    """The tenant's versions, newest first."""
    rows = tx.fetch_all(f"SELECT {_COLUMNS} FROM rollout_versions WHERE tenant_id = :tenant_id "
                        "ORDER BY version DESC LIMIT :limit", {"limit": limit})
    return [_version(tx, r) for r in rows]


def _insert(tx: Transaction, ctx: ChangeContext, content: dict[str, Any], note: str,
            state: VersionState, rolled_back_from: int | None = None) -> RolloutVersion:
    row = tx.fetch_one("SELECT COALESCE(MAX(version), 0) + 1 AS next FROM rollout_versions "
                       "WHERE tenant_id = :tenant_id")
    version = int(row["next"]) if row else 1
    approved = state == "approved"
    tx.execute(
        "INSERT INTO rollout_versions (tenant_id, version, state, sector, base_overlay, overlay, "
        "menu, note, author, created_at, submitted_at, approved_by, approved_at, "
        "rolled_back_from) VALUES (:tenant_id, :version, :state, :sector, :base_overlay, "
        ":overlay, :menu, :note, :author, :now, :submitted_at, :approved_by, :approved_at, "
        ":rolled_back_from)",
        {"version": version, "state": state, **content, "note": note, "author": ctx.actor,
         "now": ctx.now, "submitted_at": ctx.now if approved else None,
         "approved_by": ctx.actor if approved else None,
         "approved_at": ctx.now if approved else None, "rolled_back_from": rolled_back_from})
    return get_version(tx, version)


def create_draft(tx: Transaction, ctx: ChangeContext, body: DraftUpload) -> RolloutVersion:
    """Validate the upload (422 naming file, path, reason) and store it as a new draft."""
    overlay = parsed_overlay(body)
    validate_upload(body.sector, body.base_overlay, overlay, body.menu)
    draft = _insert(tx, ctx, {"sector": body.sector, "base_overlay": body.base_overlay,
                              "overlay": overlay, "menu": body.menu}, body.note, "draft")
    record(tx, ctx, "rollout.draft", f"rollouts/{draft.version}", None, _snapshot(draft))
    return draft


def submit(tx: Transaction, ctx: ChangeContext, version: int) -> RolloutVersion:
    before = get_version(tx, version)
    check_submit(before)
    tx.execute("UPDATE rollout_versions SET state = 'submitted', submitted_at = :now "
               "WHERE tenant_id = :tenant_id AND version = :version",
               {"now": ctx.now, "version": version})
    after = get_version(tx, version)
    record(tx, ctx, "rollout.submit", f"rollouts/{version}", _snapshot(before), _snapshot(after))
    return after


def approve(tx: Transaction, ctx: ChangeContext, version: int) -> RolloutVersion:
    before = get_version(tx, version)
    check_approve(before, ctx.actor)
    tx.execute("UPDATE rollout_versions SET state = 'approved', approved_by = :actor, "
               "approved_at = :now WHERE tenant_id = :tenant_id AND version = :version",
               {"actor": ctx.actor, "now": ctx.now, "version": version})
    after = get_version(tx, version)
    record(tx, ctx, "rollout.approve", f"rollouts/{version}", _snapshot(before), _snapshot(after))
    return after


def promote(tx: Transaction, ctx: ChangeContext, version: int, stage: Stage) -> RolloutVersion:
    """Mark `version` live in `stage`; the caller then publishes to `stage_devices`."""
    before = get_version(tx, version)
    check_promote(before, stage)
    live = live_versions(tx).get(stage)
    if live is not None and live > version:
        raise _conflict("rollout.older_than_live",
                        f"{stage} runs version {live} already; roll back to {version} instead")
    tx.execute("INSERT INTO rollout_promotions (tenant_id, version, stage, promoted_by, "
               "promoted_at) VALUES (:tenant_id, :version, :stage, :actor, :now)",
               {"version": version, "stage": stage, "actor": ctx.actor, "now": ctx.now})
    after = get_version(tx, version)
    record(tx, ctx, "rollout.promote", f"rollouts/{version}/stages/{stage}", _snapshot(before),
           _snapshot(after))
    return after


def rollback(tx: Transaction, ctx: ChangeContext, to_version: int,
             note: str = "") -> RolloutVersion:
    """A new approved version with `to_version`'s content, promoted to every stage that
    has a live version now; the caller publishes to those stages' devices."""
    target = get_version(tx, to_version)
    check_rollback_target(target)
    live = live_versions(tx)
    content = target.content()
    new = _insert(tx, ctx, content, note or f"rollback to version {to_version}", "approved",
                  rolled_back_from=to_version)
    for stage in STAGES:
        if stage in live:
            tx.execute("INSERT INTO rollout_promotions (tenant_id, version, stage, promoted_by, "
                       "promoted_at) VALUES (:tenant_id, :version, :stage, :actor, :now)",
                       {"version": new.version, "stage": stage, "actor": ctx.actor,
                        "now": ctx.now})
    new = get_version(tx, new.version)
    record(tx, ctx, "rollout.rollback", f"rollouts/{new.version}",
           {"live": {s: v for s, v in live.items()}, "to_version": to_version}, _snapshot(new))
    return new


def diff_versions(tx: Transaction, a: int, b: int) -> VersionDiff:
    left, right = get_version(tx, a), get_version(tx, b)
    return VersionDiff(tenant_id=left.tenant_id, from_version=a, to_version=b,
                       changes=structural_diff(left.content(), right.content()))


def live_versions(tx: Transaction) -> dict[Stage, int]:
    """The version each stage runs: the newest promoted to it."""
    rows = tx.fetch_all("SELECT stage, MAX(version) AS version FROM rollout_promotions "
                        "WHERE tenant_id = :tenant_id GROUP BY stage")
    return {r["stage"]: int(r["version"]) for r in rows}


def device_stage(tx: Transaction, device_id: str) -> Stage | None:
    row = tx.fetch_one("SELECT stage FROM device_stages WHERE tenant_id = :tenant_id "
                       "AND device_id = :device_id", {"device_id": device_id})
    return row["stage"] if row else None


def stage_devices(tx: Transaction, stage: Stage) -> list[str]:
    """Active enrolled devices labelled `stage`."""
    rows = tx.fetch_all(
        "SELECT s.device_id FROM device_stages s JOIN enrolled_devices e "
        "ON e.tenant_id = s.tenant_id AND e.device_id = s.device_id "
        "WHERE s.tenant_id = :tenant_id AND s.stage = :stage AND e.status = 'active' "
        "ORDER BY s.device_id", {"stage": stage})
    return [str(r["device_id"]) for r in rows]


def set_device_stage(tx: Transaction, ctx: ChangeContext, device_id: str,
                     stage: Stage | None) -> bool:
    """Label an enrolled device with its stage (None: none), audited; False if unchanged."""
    get_device(tx, device_id)
    before = device_stage(tx, device_id)
    if before == stage:
        return False
    params = {"device_id": device_id, "stage": stage, "actor": ctx.actor, "now": ctx.now}
    if not tx.execute("UPDATE device_stages SET stage = :stage, updated_by = :actor, "
                      "updated_at = :now WHERE tenant_id = :tenant_id AND device_id = :device_id",
                      params):
        tx.execute("INSERT INTO device_stages (tenant_id, device_id, stage, updated_by, "
                   "updated_at) VALUES (:tenant_id, :device_id, :stage, :actor, :now)", params)
    record(tx, ctx, "device.stage", f"devices/{device_id}/stage",
           {"stage": before} if before else None, {"stage": stage} if stage else None)
    return True
