"""HTTP routes of the integration plane: integrations, actions and operator remediation.

`/api/v1/tenants/{tenant_id}/integrations/...` configures a tenant's POS and webhook
endpoints; `.../integration-actions/...` lists actions with their event history and
applies retry-now, skip and resolve; `.../orders/{order_id}/replay-actions` replays an
order. Reads need tenant:read, changes tenant:write; every change is audited. The lead
wires `router` into the cloud app next to the control-plane routers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field

from cloud.control.api_errors import ApiError
from cloud.control.auth import (
    ERROR_RESPONSES,
    ChangeDep,
    PrincipalDep,
    require_tenant,
    tenant_not_found,
)
from cloud.control.control_errors import ControlError
from cloud.control.control_state import ControlDep, ControlPlane
from cloud.control.tenants import get_tenant
from cloud.integration.action_store import (
    ActionNotFound,
    action_events,
    get_action,
    list_actions,
    list_breakers,
)
from cloud.integration.breaker import Breaker
from cloud.integration.lifecycle import IllegalTransition
from cloud.integration.pos_square import SquareConfig
from cloud.integration.remediation import (
    IntegrationView,
    KindChange,
    Operation,
    OrderNotFound,
    list_integrations,
    operate,
    put_integration,
    replay,
)
from cloud.integration.webhooks import WebhookConfig
from sync.contracts.actions import Action, ActionEvent, ActionState
from sync.contracts.errors import Correlation, ErrorEnvelope
from sync.structured_log import log_context

router = APIRouter(prefix="/api/v1/tenants/{tenant_id}", tags=["integration"],
                   responses=ERROR_RESPONSES)


class IntegrationPut(BaseModel):
    """A POS (Square) or webhook integration; secrets are write-only."""

    enabled: bool = True
    config: Annotated[SquareConfig | WebhookConfig, Field(discriminator="kind")]


class ActionDetail(BaseModel):
    """An action and every transition it went through, oldest first."""

    action: Action
    events: list[ActionEvent]


class Remedy(BaseModel):
    reason: str | None = Field(default=None, max_length=500)


def _not_found(what: str, **ids: str) -> ApiError:
    return ApiError(404, ErrorEnvelope(code=f"{what}.not_found", category="validation",
                                       message=f"no such {what}", correlation=Correlation(**ids)))


def _tenant(control: ControlPlane, tenant_id: str) -> None:
    """404 unless the tenant exists (the caller's access was checked already)."""
    try:
        get_tenant(control.db, tenant_id)
    except ControlError:
        raise tenant_not_found(tenant_id) from None


@router.put("/integrations/{integration_id}")
def put(control: ControlDep, principal: PrincipalDep, ctx: ChangeDep, tenant_id: str,
        integration_id: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")],
        body: IntegrationPut) -> IntegrationView:
    """Create or replace an integration; new orders get actions for it from now on."""
    require_tenant(principal, tenant_id, "write")
    _tenant(control, tenant_id)
    if control.secrets is None:
        raise ApiError(503, ErrorEnvelope(
            code="integration.secrets_unavailable", category="unavailable", retryable=False,
            message="this deployment has no key to seal integration secrets with"))
    with log_context(tenant_id=tenant_id, request_id=ctx.request_id):
        try:
            return put_integration(control.db, tenant_id, integration_id, body.config,
                                   body.enabled, ctx, control.secrets)
        except KindChange as exc:
            raise ApiError(409, ErrorEnvelope(code="integration.kind_change",
                                              category="validation", message=str(exc))) from None


@router.get("/integrations")
def integrations(control: ControlDep, principal: PrincipalDep,
                 tenant_id: str) -> list[IntegrationView]:
    require_tenant(principal, tenant_id, "read")
    _tenant(control, tenant_id)
    return list_integrations(control.db, tenant_id)


@router.get("/integration-breakers")
def breakers(control: ControlDep, principal: PrincipalDep, tenant_id: str) -> list[Breaker]:
    """Each integration's circuit breaker: closed, open (since when) or half_open."""
    require_tenant(principal, tenant_id, "read")
    _tenant(control, tenant_id)
    with control.db.tenant(tenant_id) as tx:
        return list_breakers(tx)


@router.get("/integration-actions")
def actions(control: ControlDep, principal: PrincipalDep, tenant_id: str,
            state: ActionState | None = None, order_id: str | None = None,
            limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[Action]:
    """The tenant's actions, newest first; filter by state (e.g. dead_lettered) or order."""
    require_tenant(principal, tenant_id, "read")
    _tenant(control, tenant_id)
    with control.db.tenant(tenant_id) as tx:
        return list_actions(tx, state=state, order_id=order_id, limit=limit)


@router.get("/integration-actions/{action_id}")
def action(control: ControlDep, principal: PrincipalDep, tenant_id: str,
           action_id: str) -> ActionDetail:
    require_tenant(principal, tenant_id, "read")
    _tenant(control, tenant_id)
    with control.db.tenant(tenant_id) as tx:
        try:
            return ActionDetail(action=get_action(tx, action_id),
                                events=action_events(tx, action_id))
        except ActionNotFound:
            raise _not_found("action", action_id=action_id) from None


def _operate(control: ControlDep, principal: PrincipalDep, ctx: ChangeDep, tenant_id: str,
             action_id: str, op: Operation, remedy: Remedy | None) -> Action:
    require_tenant(principal, tenant_id, "write")
    _tenant(control, tenant_id)
    with log_context(tenant_id=tenant_id, action_id=action_id, request_id=ctx.request_id):
        try:
            return operate(control.db, tenant_id, action_id, op, ctx,
                           reason=remedy.reason if remedy else None)
        except ActionNotFound:
            raise _not_found("action", action_id=action_id) from None
        except IllegalTransition as exc:
            raise ApiError(409, ErrorEnvelope(
                code=IllegalTransition.code, category="validation", message=str(exc),
                correlation=Correlation(tenant_id=tenant_id, action_id=action_id))) from None


@router.post("/integration-actions/{action_id}/retry-now")
def retry_now(control: ControlDep, principal: PrincipalDep, ctx: ChangeDep, tenant_id: str,
              action_id: str, remedy: Annotated[Remedy | None, Body()] = None) -> Action:
    """Send a waiting or dead-lettered action on the next tick (409 in any other state)."""
    return _operate(control, principal, ctx, tenant_id, action_id, "retry_now", remedy)


@router.post("/integration-actions/{action_id}/skip")
def skip(control: ControlDep, principal: PrincipalDep, ctx: ChangeDep, tenant_id: str,
         action_id: str, remedy: Annotated[Remedy | None, Body()] = None) -> Action:
    """Give up on an action that has not succeeded: it becomes cancelled."""
    return _operate(control, principal, ctx, tenant_id, action_id, "skip", remedy)


@router.post("/integration-actions/{action_id}/resolve")
def resolve(control: ControlDep, principal: PrincipalDep, ctx: ChangeDep, tenant_id: str,
            action_id: str, remedy: Annotated[Remedy | None, Body()] = None) -> Action:
    """Mark an action done by hand (e.g. the order was keyed into the POS): succeeded."""
    return _operate(control, principal, ctx, tenant_id, action_id, "resolve", remedy)


@router.post("/orders/{order_id}/replay-actions")
def replay_actions(control: ControlDep, principal: PrincipalDep, ctx: ChangeDep,
                   tenant_id: str, order_id: str) -> list[Action]:
    """Plan the order's events again: missing actions created, dead letters retried."""
    require_tenant(principal, tenant_id, "write")
    _tenant(control, tenant_id)
    with log_context(tenant_id=tenant_id, order_id=order_id, request_id=ctx.request_id):
        try:
            return replay(control.db, tenant_id, order_id, ctx)
        except OrderNotFound:
            raise _not_found("order", order_id=order_id) from None
