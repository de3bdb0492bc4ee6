"""Feature flags, kill switches and routing policies of a tenant, stored and resolved.

A flag has a value per device, per tenant, and a built-in default; the device's wins,
then the tenant's, then the default (`resolve_flags`, pure). `answer_calls=false` is the
kill switch: the box stops taking orders and rings the staff. Unsetting a value (None)
falls back to the next level. The routing policy (allowed providers, tier, cost caps) is
one document per tenant, published as DesiredState.routing. Every change is audited in
the transaction that makes it; publishing to the devices is the caller's next step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloud.control.audit import ChangeContext, record
from cloud.control.control_errors import ControlError
from cloud.db import Transaction, json_value

FLAG_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
DEFAULT_FLAGS: dict[str, bool] = {"answer_calls": True}
"""Flags the box knows, with the value it runs when nobody set one."""

TENANT_WIDE = ""  # device_id of a tenant-level value
Level = Literal["device", "tenant", "default"]


class FlagChange(BaseModel):
    """Body of PUT .../flags/{flag}: the new value, or null to fall back to the next level."""

    model_config = ConfigDict(extra="forbid")

    value: bool | None


class ResolvedFlag(BaseModel):
    """A flag's effective value for one device and the level it came from."""

    flag: str
    value: bool
    source: Level


class FlagValues(BaseModel):
    """The values set at one level (tenant or device), unset ones left out."""

    tenant_id: str
    device_id: str | None
    flags: dict[str, bool]


class RoutingPolicy(BaseModel):
    """What the vendor routing layer of the box may use; absent caps mean no cap.

    `tier` and the caps are read by the box's router (TenantRouting); `allowed_providers`
    (None: all registered providers) narrows which providers it may pick at all.
    """

    model_config = ConfigDict(extra="forbid")

    tier: Literal["basic", "standard", "premium"] = "standard"
    allowed_providers: list[str] | None = Field(default=None, max_length=64)
    cost_cap_per_audio_s: float | None = Field(default=None, ge=0)
    cost_cap_per_1k_tokens: float | None = Field(default=None, ge=0)
    daily_cost_cap_cents: float | None = Field(
        default=None, ge=0, description="the tenant's estimated provider cost per UTC day; "
        "reaching it switches routing to the cheapest allowed providers (usage.py)")

    def published(self) -> dict[str, Any]:
        """The policy as DesiredState.routing carries it (unset keys left out; the daily
        cap is the cloud's business, not the box router's)."""
        return self.model_dump(mode="json", exclude_none=True, exclude={"daily_cost_cap_cents"})


class RoutingView(BaseModel):
    tenant_id: str
    policy: RoutingPolicy
    updated_by: str | None
    updated_at: datetime | None


def resolve_flags(defaults: Mapping[str, bool], tenant: Mapping[str, bool],
                  device: Mapping[str, bool]) -> list[ResolvedFlag]:
    """Every flag named at any level, device over tenant over default (sorted by name)."""
    out: list[ResolvedFlag] = []
    for flag in sorted({*defaults, *tenant, *device}):
        if flag in device:
            out.append(ResolvedFlag(flag=flag, value=device[flag], source="device"))
        elif flag in tenant:
            out.append(ResolvedFlag(flag=flag, value=tenant[flag], source="tenant"))
        else:
            out.append(ResolvedFlag(flag=flag, value=defaults.get(flag, False), source="default"))
    return out


def flag_values(tx: Transaction, device_id: str = TENANT_WIDE) -> dict[str, bool]:
    """The values set at one level: tenant-wide (default) or of one device."""
    rows = tx.fetch_all(
        "SELECT flag, value FROM feature_flags WHERE tenant_id = :tenant_id "
        "AND device_id = :device_id AND value IS NOT NULL ORDER BY flag",
        {"device_id": device_id})
    return {str(r["flag"]): bool(r["value"]) for r in rows}


def device_flags(tx: Transaction, device_id: str) -> list[ResolvedFlag]:
    return resolve_flags(DEFAULT_FLAGS, flag_values(tx), flag_values(tx, device_id))


def published_flags(tx: Transaction, device_id: str) -> dict[str, bool]:
    """DesiredState.flags of a device: every resolved flag."""
    return {f.flag: f.value for f in device_flags(tx, device_id)}


def set_flag(tx: Transaction, ctx: ChangeContext, flag: str, value: bool | None,
             device_id: str = TENANT_WIDE) -> bool:
    """Set (or with None unset) a flag at the tenant or device level, audited; False when
    nothing changed (so the caller publishes nothing)."""
    before = flag_values(tx, device_id).get(flag)
    if before == value:
        return False
    stored = None if value is None else int(value)
    changed = tx.execute(
        "UPDATE feature_flags SET value = :value, updated_by = :actor, updated_at = :now "
        "WHERE tenant_id = :tenant_id AND device_id = :device_id AND flag = :flag",
        {"value": stored, "actor": ctx.actor, "now": ctx.now, "device_id": device_id,
         "flag": flag})
    if not changed:
        tx.execute(
            "INSERT INTO feature_flags (tenant_id, device_id, flag, value, updated_by, "
            "updated_at) VALUES (:tenant_id, :device_id, :flag, :value, :actor, :now)",
            {"device_id": device_id, "flag": flag, "value": stored, "actor": ctx.actor,
             "now": ctx.now})
    where = f"devices/{device_id}/flags/{flag}" if device_id else f"flags/{flag}"
    record(tx, ctx, "flag.set" if value is not None else "flag.unset", where,
           None if before is None else {"value": before},
           None if value is None else {"value": value})
    return True


def routing_policy(tx: Transaction) -> RoutingView:
    row = tx.fetch_one("SELECT policy, updated_by, updated_at FROM routing_policies "
                       "WHERE tenant_id = :tenant_id")
    tenant_id = str(tx.tenant_id)
    if row is None:
        return RoutingView(tenant_id=tenant_id, policy=RoutingPolicy(), updated_by=None,
                           updated_at=None)
    return RoutingView(tenant_id=tenant_id,
                       policy=RoutingPolicy.model_validate(json_value(row["policy"])),
                       updated_by=row["updated_by"], updated_at=row["updated_at"])


def set_routing_policy(tx: Transaction, ctx: ChangeContext, policy: RoutingPolicy) -> RoutingView:
    """Replace the tenant's routing policy, audited."""
    before = routing_policy(tx)
    if before.policy == policy and before.updated_at is not None:
        return before
    params: dict[str, object] = {"policy": policy.model_dump(mode="json"), "actor": ctx.actor,
                                 "now": ctx.now}
    if before.updated_at is None:
        tx.execute("INSERT INTO routing_policies (tenant_id, policy, updated_by, updated_at) "
                   "VALUES (:tenant_id, :policy, :actor, :now)", params)
    else:
        tx.execute("UPDATE routing_policies SET policy = :policy, updated_by = :actor, "
                   "updated_at = :now WHERE tenant_id = :tenant_id", params)
    record(tx, ctx, "routing.set", "routing",
           before.policy.model_dump(mode="json") if before.updated_at else None,
           policy.model_dump(mode="json"))
    return RoutingView(tenant_id=str(tx.tenant_id), policy=policy, updated_by=ctx.actor,
                       updated_at=ctx.now)


def check_flag_name(flag: str) -> str:
    if not re.match(FLAG_PATTERN, flag):
        raise ControlError("invalid", "flag.name_invalid",
                           f"flag name {flag!r} must match {FLAG_PATTERN}")
    return flag
