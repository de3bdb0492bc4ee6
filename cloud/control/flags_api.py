"""HTTP routes for feature flags, kill switches and the routing policy of a tenant.

A change is stored and audited, then the next desired state goes to every device it
affects (all of the tenant's for a tenant-level flag or the routing policy, one for a
device-level flag), so `PUT .../flags/answer_calls {"value": false}` makes the boxes ring
the staff instead of taking orders.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from cloud.control.auth import ERROR_RESPONSES, ChangeDep, PrincipalDep, require_tenant
from cloud.control.control_state import ControlDep
from cloud.control.dependencies import DbDep
from cloud.control.device_desired import plan_devices, publish, tenant_devices_to_publish
from cloud.control.devices_registry import get_device
from cloud.control.flags import (
    TENANT_WIDE,
    FlagChange,
    FlagValues,
    ResolvedFlag,
    RoutingPolicy,
    RoutingView,
    check_flag_name,
    device_flags,
    flag_values,
    routing_policy,
    set_flag,
    set_routing_policy,
)
from cloud.control.rate_limit import LIMIT_RESPONSES, TENANT_LIMITS
from cloud.control.tenants import existing_tenant
from sync.contracts.messages import DesiredState
from sync.structured_log import log_context

router = APIRouter(prefix="/api/v1/tenants/{tenant_id}", tags=["flags"],
                   responses={**ERROR_RESPONSES, **LIMIT_RESPONSES},
                   dependencies=[TENANT_LIMITS])


class FlagSet(BaseModel):
    """A flag change and the desired states it produced."""

    flag: str
    value: bool | None
    device_id: str | None
    published: list[DesiredState]


class RoutingSet(BaseModel):
    routing: RoutingView
    published: list[DesiredState]


@router.get("/flags")
def tenant_flags(control: ControlDep, principal: PrincipalDep, tenant_id: str) -> FlagValues:
    """Flags set tenant-wide (unset ones fall back to the defaults)."""
    require_tenant(principal, tenant_id, "read")
    with existing_tenant(control.db, tenant_id) as tx:
        return FlagValues(tenant_id=tenant_id, device_id=None, flags=flag_values(tx))


@router.put("/flags/{flag}")
def put_tenant_flag(control: ControlDep, cloud_db: DbDep, principal: PrincipalDep,
                    ctx: ChangeDep, tenant_id: str, flag: str, body: FlagChange) -> FlagSet:
    """Set (null: unset) a flag for the whole tenant and publish to all its devices."""
    require_tenant(principal, tenant_id, "write")
    check_flag_name(flag)
    with log_context(tenant_id=tenant_id, request_id=ctx.request_id):
        with existing_tenant(control.db, tenant_id) as tx:
            changed = set_flag(tx, ctx, flag, body.value)
            plans = (plan_devices(tx, cloud_db, tenant_devices_to_publish(tx, cloud_db))
                     if changed else [])
        sent = publish(control.db, cloud_db, ctx, tenant_id, plans, f"flag {flag}={body.value}")
    return FlagSet(flag=flag, value=body.value, device_id=None, published=sent)


@router.get("/devices/{device_id}/flags")
def get_device_flags(control: ControlDep, principal: PrincipalDep, tenant_id: str,
                     device_id: str) -> list[ResolvedFlag]:
    """The device's effective flags and where each value comes from."""
    require_tenant(principal, tenant_id, "read")
    with existing_tenant(control.db, tenant_id) as tx:
        get_device(tx, device_id)
        return device_flags(tx, device_id)


@router.put("/devices/{device_id}/flags/{flag}")
def put_device_flag(control: ControlDep, cloud_db: DbDep, principal: PrincipalDep,
                    ctx: ChangeDep, tenant_id: str, device_id: str, flag: str,
                    body: FlagChange) -> FlagSet:
    """Set (null: unset) a flag for one enrolled device; it wins over the tenant's."""
    require_tenant(principal, tenant_id, "write")
    check_flag_name(flag)
    with log_context(tenant_id=tenant_id, device_id=device_id, request_id=ctx.request_id):
        with existing_tenant(control.db, tenant_id) as tx:
            get_device(tx, device_id)
            changed = set_flag(tx, ctx, flag, body.value, device_id or TENANT_WIDE)
            plans = plan_devices(tx, cloud_db, [device_id]) if changed else []
        sent = publish(control.db, cloud_db, ctx, tenant_id, plans, f"flag {flag}={body.value}")
    return FlagSet(flag=flag, value=body.value, device_id=device_id, published=sent)


@router.get("/routing")
def get_routing(control: ControlDep, principal: PrincipalDep, tenant_id: str) -> RoutingView:
    require_tenant(principal, tenant_id, "read")
    with existing_tenant(control.db, tenant_id) as tx:
        return routing_policy(tx)


@router.put("/routing")
def put_routing(control: ControlDep, cloud_db: DbDep, principal: PrincipalDep, ctx: ChangeDep,
                tenant_id: str, body: RoutingPolicy) -> RoutingSet:
    """Replace the routing policy (allowed providers, tier, cost caps); published to all
    the tenant's devices as DesiredState.routing."""
    require_tenant(principal, tenant_id, "write")
    with log_context(tenant_id=tenant_id, request_id=ctx.request_id):
        with existing_tenant(control.db, tenant_id) as tx:
            view = set_routing_policy(tx, ctx, body)
            plans = plan_devices(tx, cloud_db, tenant_devices_to_publish(tx, cloud_db))
        sent = publish(control.db, cloud_db, ctx, tenant_id, plans, "routing policy")
    return RoutingSet(routing=view, published=sent)
