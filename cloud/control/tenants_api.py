"""HTTP routes for tenants and their audit log (`/api/v1/tenants`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from cloud.control.audit import AuditEntry, tenant_entries
from cloud.control.auth import ERROR_RESPONSES, ChangeDep, PrincipalDep, require_ops, require_tenant
from cloud.control.control_state import ControlDep
from cloud.control.dependencies import DbDep
from cloud.control.device_desired import plan_devices, publish, tenant_devices_to_publish
from cloud.control.tenants import (
    Tenant,
    TenantCreate,
    TenantPatch,
    change_tenant,
    create_tenant,
    existing_tenant,
    get_tenant,
    list_tenants,
)
from sync.structured_log import log_context

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"], responses=ERROR_RESPONSES)


@router.post("", status_code=status.HTTP_201_CREATED)
def create(control: ControlDep, principal: PrincipalDep, ctx: ChangeDep,
           body: TenantCreate) -> Tenant:
    """Create a tenant (ops only) in a region this deployment serves."""
    require_ops(principal)
    with log_context(request_id=ctx.request_id):
        return create_tenant(control.db, ctx, body, control.regions)


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
def patch(control: ControlDep, cloud_db: DbDep, principal: PrincipalDep, ctx: ChangeDep,
          tenant_id: str, body: TenantPatch) -> Tenant:
    """Change name, tier, quotas or retention (ops only; the region is fixed). A change of
    the policy the boxes enforce (calls_per_min, transcript or recording retention)
    publishes a new desired version to every device of the tenant."""
    require_tenant(principal, tenant_id, "read")
    require_ops(principal)
    with log_context(tenant_id=tenant_id, request_id=ctx.request_id):
        with existing_tenant(control.db, tenant_id) as tx:
            change = change_tenant(tx, ctx, body)
            plans = (plan_devices(tx, cloud_db, tenant_devices_to_publish(tx, cloud_db))
                     if change.policy_changed else [])
        publish(control.db, cloud_db, ctx, tenant_id, plans, "tenant policy")
    return change.after


@router.get("/{tenant_id}/audit")
def audit(control: ControlDep, principal: PrincipalDep, tenant_id: str,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditEntry]:
    """The tenant's audit log, newest first."""
    require_tenant(principal, tenant_id, "read")
    with existing_tenant(control.db, tenant_id) as tx:
        return tenant_entries(tx, limit)
