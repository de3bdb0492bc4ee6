"""HTTP routes that steer devices: desired state, order commands and reconciliation.

Routes only write the database; the downlink beside ingest publishes what they wrote, so
a request never waits on the broker and nothing is lost while the broker is down. All
live under `/api/v1/tenants/{tenant_id}` behind a bearer token of that tenant (ops
anywhere) and are audited; the fleet-wide reconcile is ops only. A raw PUT of desired
state bypasses the rollout approval flow, so it is audited like every other change and
is ops only: a tenant's own changes go through the rollout (draft, second-person approval,
staged promotion). Errors leave as ErrorEnvelope bodies (see `api_errors`).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel

from cloud.control.api_errors import ApiError
from cloud.control.audit import ChangeContext, record
from cloud.control.auth import (
    ERROR_RESPONSES,
    ChangeDep,
    PrincipalDep,
    require_ops,
    require_tenant,
)
from cloud.control.control_state import ControlDep
from cloud.control.dependencies import DbDep
from cloud.control.desired_state import (
    DesiredRequest,
    DesiredVersion,
    desired_versions,
    set_desired,
)
from cloud.control.rate_limit import LIMIT_RESPONSES, TENANT_LIMITS
from cloud.control.reconcile import issue_command, reconcile_all
from cloud.control.tenants import existing_tenant
from cloud.db import Database
from sync.contracts.errors import Correlation, ErrorEnvelope
from sync.contracts.messages import Command, DesiredState, ReportedState
from sync.structured_log import log_context

router = APIRouter(prefix="/api/v1", tags=["devices"],
                   responses={**ERROR_RESPONSES, **LIMIT_RESPONSES},
                   dependencies=[TENANT_LIMITS])
_TENANT = "/tenants/{tenant_id}"


class DeviceSyncState(BaseModel):
    """What the cloud wants a device to run, and what the device last said it runs."""

    desired: DesiredState | None
    reported: ReportedState | None


class CommandRequest(BaseModel):
    """Body of POST .../orders/{order_id}/commands."""

    kind: Literal["cancel", "reprint"]
    reason: str = ""


class CommandView(BaseModel):
    """A command with the outcome its device reported (None while it is still out)."""

    command: Command
    outcome: str | None
    reason: str | None


def _audit(db: Database, ctx: ChangeContext, tenant_id: str, action: str, resource: str,
           after: dict[str, Any]) -> None:
    with db.tenant(tenant_id) as tx:
        record(tx, ctx, action, resource, None, after)


def _command_view(c: Command) -> dict[str, Any]:
    return c.model_dump(mode="json", include={"command_id", "device_id", "kind", "order_id",
                                              "day", "reason"})


@router.put(_TENANT + "/devices/{device_id}/desired")
def put_desired(control: ControlDep, db: DbDep, principal: PrincipalDep, ctx: ChangeDep,
                tenant_id: str, device_id: str, body: DesiredRequest) -> DesiredState:
    """Set the device's next desired version (published retained on down/desired)."""
    require_tenant(principal, tenant_id, "write")  # another tenant's device: 404 first
    require_ops(principal)  # bypasses the rollout's approval: never a tenant token
    with log_context(tenant_id=tenant_id, device_id=device_id, request_id=ctx.request_id):
        with existing_tenant(control.db, tenant_id):
            pass
        desired = set_desired(db, tenant_id, device_id, body, ctx.now)
        _audit(control.db, ctx, tenant_id, "desired.set", f"devices/{device_id}/desired",
               desired.model_dump(mode="json", exclude={"blueprint_overlay", "menu"}))
    return desired


@router.get(_TENANT + "/devices/{device_id}/desired")
def get_desired(control: ControlDep, db: DbDep, principal: PrincipalDep, tenant_id: str,
                device_id: str) -> DeviceSyncState:
    require_tenant(principal, tenant_id, "read")
    desired = db.desired_state(tenant_id, device_id)
    reported = db.reported_states(tenant_id, device_id)
    if desired is None and not reported:
        raise ApiError(404, ErrorEnvelope(
            code="device.no_desired_state", category="validation",
            message="this device has neither a desired state nor a report",
            correlation=Correlation(tenant_id=tenant_id, device_id=device_id)))
    return DeviceSyncState(desired=desired, reported=reported[0] if reported else None)


@router.get(_TENANT + "/devices/{device_id}/commands")
def get_commands(db: DbDep, principal: PrincipalDep, tenant_id: str,
                 device_id: str) -> list[CommandView]:
    require_tenant(principal, tenant_id, "read")
    return [CommandView(command=c, outcome=o, reason=r)
            for c, o, r in db.device_commands(tenant_id, device_id)]


@router.get(_TENANT + "/desired")
def list_desired(db: DbDep, principal: PrincipalDep, tenant_id: str) -> list[DesiredVersion]:
    """Which device should run which version, and which version it has applied."""
    require_tenant(principal, tenant_id, "read")
    return desired_versions(db, tenant_id)


@router.post(_TENANT + "/orders/{order_id}/commands", status_code=202)
def post_order_command(control: ControlDep, db: DbDep, principal: PrincipalDep,
                       ctx: ChangeDep, tenant_id: str, order_id: str,
                       body: CommandRequest) -> Command:
    """Cancel or reprint an order on the box that took it; a cancel is the cloud's record."""
    require_tenant(principal, tenant_id, "write")
    record_ = db.order(order_id)
    if record_ is None or record_.tenant_id != tenant_id:
        raise ApiError(404, ErrorEnvelope(
            code="order.not_found", category="validation",
            message="no order with this id has reached the cloud",
            correlation=Correlation(tenant_id=tenant_id, order_id=order_id)))
    if body.kind == "cancel" and record_.order.status == "cancelled":
        raise ApiError(409, ErrorEnvelope(
            code="order.already_cancelled", category="validation",
            message="this order is cancelled already",
            correlation=Correlation(tenant_id=tenant_id, order_id=order_id)))
    with log_context(tenant_id=tenant_id, order_id=order_id, request_id=ctx.request_id):
        command = issue_command(db, tenant_id, record_.device_id, body.kind, ctx.now,
                                order_id=order_id, reason=body.reason, origin="api")
        _audit(control.db, ctx, tenant_id, f"command.{body.kind}",
               f"orders/{order_id}/commands/{command.command_id}", _command_view(command))
    return command


@router.post(_TENANT + "/reconcile")
def post_tenant_reconcile(control: ControlDep, db: DbDep, principal: PrincipalDep,
                          ctx: ChangeDep, tenant_id: str) -> list[Command]:
    """Reconcile the tenant's devices now over their latest reports; the commands issued."""
    require_tenant(principal, tenant_id, "write")
    with log_context(tenant_id=tenant_id, request_id=ctx.request_id):
        issued = reconcile_all(db, ctx.now, tenant_id)
        if issued:
            _audit(control.db, ctx, tenant_id, "reconcile.run", "reconcile",
                   {"commands": [_command_view(c) for c in issued]})
    return issued


@router.post("/reconcile")
def post_reconcile(control: ControlDep, db: DbDep, principal: PrincipalDep,
                   ctx: ChangeDep) -> list[Command]:
    """Reconcile every device of the fleet now (ops only); the commands it issued."""
    require_ops(principal)
    with log_context(request_id=ctx.request_id):
        issued = reconcile_all(db, ctx.now)
        with control.db.fleet() as tx:
            for c in issued:
                record(tx, ctx, "reconcile.run", "reconcile", None,
                       {"commands": [_command_view(c)]}, fleet_tenant_id=c.tenant_id)
    return issued
