"""HTTP routes of the blueprint/menu lifecycle (`/api/v1/tenants/{tenant_id}/rollouts`).

Upload a draft, submit it, have a second token approve it, promote it dev -> staging ->
prod, diff any two versions, roll back in one call, and see per version which devices
reported it applied. Devices join a stage with PUT .../devices/{device_id}/stage.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel

from cloud.control.auth import ERROR_RESPONSES, ChangeDep, PrincipalDep, require_tenant
from cloud.control.blueprint_upload import DraftUpload
from cloud.control.control_state import ControlDep
from cloud.control.dependencies import DbDep
from cloud.control.device_desired import (
    RolloutStatus,
    devices_of_stages,
    plan_devices,
    publish,
    rollout_status,
)
from cloud.control.rate_limit import LIMIT_RESPONSES, TENANT_LIMITS
from cloud.control.rollout import (
    STAGES,
    PromoteRequest,
    RollbackRequest,
    RolloutVersion,
    Stage,
    StageAssignment,
    VersionDiff,
    approve,
    create_draft,
    diff_versions,
    get_version,
    history,
    live_versions,
    promote,
    rollback,
    set_device_stage,
    stage_devices,
    submit,
)
from cloud.control.tenants import existing_tenant
from sync.contracts.messages import DesiredState
from sync.structured_log import log_context

# A version number as SQL can hold it (an out-of-range one is a 422, not a 500).
VersionNo = Annotated[int, Path(ge=1, le=2**31 - 1)]

router = APIRouter(prefix="/api/v1/tenants/{tenant_id}", tags=["rollouts"],
                   responses={**ERROR_RESPONSES, **LIMIT_RESPONSES},
                   dependencies=[TENANT_LIMITS])


class Published(BaseModel):
    """A change and the desired states it produced for the affected devices."""

    version: RolloutVersion | None
    published: list[DesiredState]


class StageView(BaseModel):
    """A stage: the version it runs (None: nothing promoted yet) and its devices."""

    stage: Stage
    live_version: int | None
    devices: list[str]


@router.post("/rollouts", status_code=status.HTTP_201_CREATED)
def upload_draft(control: ControlDep, principal: PrincipalDep, ctx: ChangeDep, tenant_id: str,
                 body: DraftUpload) -> RolloutVersion:
    """Validate an overlay and/or menu (422 naming file, path, reason) and store a draft."""
    require_tenant(principal, tenant_id, "write")
    with log_context(tenant_id=tenant_id, request_id=ctx.request_id), \
            existing_tenant(control.db, tenant_id) as tx:
        return create_draft(tx, ctx, body)


@router.get("/rollouts")
def list_versions(control: ControlDep, principal: PrincipalDep, tenant_id: str,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[RolloutVersion]:
    """The tenant's versions, newest first."""
    require_tenant(principal, tenant_id, "read")
    with existing_tenant(control.db, tenant_id) as tx:
        return history(tx, limit)


@router.get("/rollouts/{version}")
def get(control: ControlDep, principal: PrincipalDep, tenant_id: str,
        version: VersionNo) -> RolloutVersion:
    require_tenant(principal, tenant_id, "read")
    with existing_tenant(control.db, tenant_id) as tx:
        return get_version(tx, version)


@router.post("/rollouts/{version}/submit")
def submit_version(control: ControlDep, principal: PrincipalDep, ctx: ChangeDep,
                   tenant_id: str, version: VersionNo) -> RolloutVersion:
    """Ask for approval: a draft becomes submitted."""
    require_tenant(principal, tenant_id, "write")
    with log_context(tenant_id=tenant_id, request_id=ctx.request_id), \
            existing_tenant(control.db, tenant_id) as tx:
        return submit(tx, ctx, version)


@router.post("/rollouts/{version}/approve")
def approve_version(control: ControlDep, principal: PrincipalDep, ctx: ChangeDep,
                    tenant_id: str, version: VersionNo) -> RolloutVersion:
    """Approve a submitted version; 409 rollout.self_approval for its own author."""
    require_tenant(principal, tenant_id, "write")
    with log_context(tenant_id=tenant_id, request_id=ctx.request_id), \
            existing_tenant(control.db, tenant_id) as tx:
        return approve(tx, ctx, version)


@router.post("/rollouts/{version}/promote")
def promote_version(control: ControlDep, cloud_db: DbDep, principal: PrincipalDep,
                    ctx: ChangeDep, tenant_id: str, version: VersionNo,
                    body: PromoteRequest) -> Published:
    """Make an approved version live in the next stage and publish it to that stage's
    devices; 409 without approval or when a stage is skipped."""
    require_tenant(principal, tenant_id, "write")
    with log_context(tenant_id=tenant_id, request_id=ctx.request_id):
        with existing_tenant(control.db, tenant_id) as tx:
            promoted = promote(tx, ctx, version, body.stage)
            plans = plan_devices(tx, cloud_db, stage_devices(tx, body.stage))
        sent = publish(control.db, cloud_db, ctx, tenant_id, plans,
                       f"rollout {version} promoted to {body.stage}")
    return Published(version=promoted, published=sent)


@router.post("/rollouts/rollback")
def rollback_to(control: ControlDep, cloud_db: DbDep, principal: PrincipalDep,
                ctx: ChangeDep, tenant_id: str, body: RollbackRequest) -> Published:
    """One call: copy an earlier approved version into a new version, live in every stage
    that runs one, published to their devices."""
    require_tenant(principal, tenant_id, "write")
    with log_context(tenant_id=tenant_id, request_id=ctx.request_id):
        with existing_tenant(control.db, tenant_id) as tx:
            new = rollback(tx, ctx, body.to_version, body.note)
            plans = plan_devices(tx, cloud_db, devices_of_stages(tx, new.promoted_to))
        sent = publish(control.db, cloud_db, ctx, tenant_id, plans,
                       f"rollback to {body.to_version} as {new.version}")
    return Published(version=new, published=sent)


@router.get("/rollouts/{version}/diff/{other}")
def diff(control: ControlDep, principal: PrincipalDep, tenant_id: str, version: VersionNo,
         other: VersionNo) -> VersionDiff:
    """Structural differences from `version` to `other` (overlay, menu, sector)."""
    require_tenant(principal, tenant_id, "read")
    with existing_tenant(control.db, tenant_id) as tx:
        return diff_versions(tx, version, other)


@router.get("/rollouts/{version}/status")
def version_status(control: ControlDep, cloud_db: DbDep, principal: PrincipalDep,
                   tenant_id: str, version: VersionNo) -> RolloutStatus:
    """Per device the version went to: pending, applied, rejected or superseded."""
    require_tenant(principal, tenant_id, "read")
    with existing_tenant(control.db, tenant_id) as tx:
        return rollout_status(tx, cloud_db, version)


@router.get("/stages")
def stages(control: ControlDep, principal: PrincipalDep, tenant_id: str) -> list[StageView]:
    """Each stage's live version and devices."""
    require_tenant(principal, tenant_id, "read")
    with existing_tenant(control.db, tenant_id) as tx:
        live = live_versions(tx)
        return [StageView(stage=s, live_version=live.get(s), devices=stage_devices(tx, s))
                for s in STAGES]


@router.put("/devices/{device_id}/stage")
def put_stage(control: ControlDep, cloud_db: DbDep, principal: PrincipalDep, ctx: ChangeDep,
              tenant_id: str, device_id: str, body: StageAssignment) -> Published:
    """Label an enrolled device with its stage; it gets that stage's live version now (a
    stage with nothing live publishes nothing: the device keeps what it runs)."""
    require_tenant(principal, tenant_id, "write")
    with log_context(tenant_id=tenant_id, device_id=device_id, request_id=ctx.request_id):
        with existing_tenant(control.db, tenant_id) as tx:
            changed = set_device_stage(tx, ctx, device_id, body.stage)
            live = body.stage is not None and body.stage in live_versions(tx)
            plans = plan_devices(tx, cloud_db, [device_id]) if changed and live else []
        sent = publish(control.db, cloud_db, ctx, tenant_id, plans,
                       f"device stage set to {body.stage}")
    return Published(version=None, published=sent)
