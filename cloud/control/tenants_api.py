"""HTTP routes for tenants and their audit log (`/api/v1/tenants`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from cloud.control.audit import AuditEntry, tenant_entries
from cloud.control.auth import ERROR_RESPONSES, ChangeDep, PrincipalDep, require_ops, require_tenant
from cloud.control.control_state import ControlDep
from cloud.control.tenants import (
    Tenant,
    TenantCreate,
    TenantPatch,
    create_tenant,
    existing_tenant,
    get_tenant,
    list_tenants,
    update_tenant,
)
from sync.structured_log import log_context

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"], responses=ERROR_RESPONSES)


@router.post("", status_code=status.HTTP_201_CREATED)
def create(control: ControlDep, principal: PrincipalDep, ctx: ChangeDep,
           body: TenantCreate) -> Tenant:
    """Create a tenant (ops only)."""
    require_ops(principal)
    with log_context(request_id=ctx.request_id):
        return create_tenant(control.db, ctx, body)


@router.get("")
def list_all(control: ControlDep, principal: PrincipalDep,
             limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> list[Tenant]:
    """Every tenant (ops only)."""
    require_ops(principal)
    return list_tenants(control.db, limit)


@router.get("/{tenant_id}")
def get(control: ControlDep, principal: PrincipalDep, tenant_id: str) -> Tenant:
    require_tenant(principal, tenant_id, "read")
    return get_tenant(control.db, tenant_id)


@router.patch("/{tenant_id}")
def patch(control: ControlDep, principal: PrincipalDep, ctx: ChangeDep, tenant_id: str,
          body: TenantPatch) -> Tenant:
    """Change name, tier, quotas or retention (ops only; the region is fixed)."""
    require_tenant(principal, tenant_id, "read")
    require_ops(principal)
    with log_context(tenant_id=tenant_id, request_id=ctx.request_id):
        return update_tenant(control.db, ctx, tenant_id, body)


@router.get("/{tenant_id}/audit")
def audit(control: ControlDep, principal: PrincipalDep, tenant_id: str,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditEntry]:
    """The tenant's audit log, newest first."""
    require_tenant(principal, tenant_id, "read")
    with existing_tenant(control.db, tenant_id) as tx:
        return tenant_entries(tx, limit)
