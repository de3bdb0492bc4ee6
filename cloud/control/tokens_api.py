"""HTTP routes for a tenant's API tokens (`/api/v1/tenants/{tenant_id}/tokens`)."""

from __future__ import annotations

from fastapi import APIRouter, status

from cloud.control.auth import ERROR_RESPONSES, ChangeDep, PrincipalDep, require_tenant
from cloud.control.control_state import ControlDep
from cloud.control.tenants import existing_tenant
from cloud.control.tokens import (
    ApiToken,
    IssuedToken,
    TokenCreate,
    issue_token,
    revoke_token,
    tenant_tokens,
)
from sync.structured_log import log_context

router = APIRouter(prefix="/api/v1/tenants/{tenant_id}/tokens", tags=["tokens"], responses=ERROR_RESPONSES)


@router.post("", status_code=status.HTTP_201_CREATED)
def create(control: ControlDep, principal: PrincipalDep, ctx: ChangeDep, tenant_id: str,
           body: TokenCreate) -> IssuedToken:
    """Issue a token; its secret is in this answer and never again."""
    require_tenant(principal, tenant_id, "write")
    with log_context(tenant_id=tenant_id, request_id=ctx.request_id), \
            existing_tenant(control.db, tenant_id) as tx:
        return issue_token(tx, ctx, body)


@router.get("")
def list_tokens(control: ControlDep, principal: PrincipalDep, tenant_id: str) -> list[ApiToken]:
    require_tenant(principal, tenant_id, "read")
    with existing_tenant(control.db, tenant_id) as tx:
        return tenant_tokens(tx)


@router.post("/{token_id}/revoke")
def revoke(control: ControlDep, principal: PrincipalDep, ctx: ChangeDep, tenant_id: str,
           token_id: str) -> ApiToken:
    """Revoke a token (idempotent); it gets 401 from the next request on."""
    require_tenant(principal, tenant_id, "write")
    with log_context(tenant_id=tenant_id, request_id=ctx.request_id), \
            existing_tenant(control.db, tenant_id) as tx:
        return revoke_token(tx, ctx, token_id)
