"""GET /api/v1/tenants/{id}/usage: a tenant's provider use and cost of one UTC day.

Totals per provider and kind over the tenant's devices (each device's latest report of
that day), the estimated cost against the routing policy's daily cap, and the cost-cap
breaker's state (usage.py).
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter

from cloud.control.auth import ERROR_RESPONSES, PrincipalDep, require_tenant
from cloud.control.control_state import ControlDep, NowDep
from cloud.control.rate_limit import LIMIT_RESPONSES, TENANT_LIMITS
from cloud.control.tenants import existing_tenant
from cloud.control.usage import UsageView, usage_view

router = APIRouter(prefix="/api/v1/tenants/{tenant_id}", tags=["usage"],
                   responses={**ERROR_RESPONSES, **LIMIT_RESPONSES},
                   dependencies=[TENANT_LIMITS])


@router.get("/usage")
def get_usage(control: ControlDep, principal: PrincipalDep, now: NowDep, tenant_id: str,
              day: date | None = None) -> UsageView:
    """Usage of `day` (YYYY-MM-DD, default today in UTC) against the tenant's daily cap."""
    require_tenant(principal, tenant_id, "read")
    with existing_tenant(control.db, tenant_id) as tx:
        return usage_view(tx, day or now.date())
