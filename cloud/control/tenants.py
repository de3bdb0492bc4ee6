"""Tenants: tier, quotas, data-residency region and retention, every change audited.

A tenant row is itself a tenant-table row: it is created, read and changed inside that
tenant's scope, so Row-Level Security covers it too. Only the list of all tenants is a
fleet read. The region is fixed at creation: moving a tenant's data between regions is
a migration, not a field update.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cloud.config import ALL_REGIONS, Region
from cloud.control.audit import ChangeContext, record
from cloud.control.control_errors import ControlError
from cloud.db import Database, Transaction, UniqueViolation, json_value
from sync.contracts.messages import TenantPolicy
from sync.ids import new_id

Tier = Literal["starter", "standard", "enterprise"]
TENANT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # also a broker username and topic level
_TENANT_ID_RE = re.compile(TENANT_ID_PATTERN)


class Quotas(BaseModel):
    """Per-tenant limits enforced at the application layer."""

    model_config = ConfigDict(extra="forbid")

    calls_per_min: int = Field(default=30, ge=0, le=100_000)
    api_requests_per_s: int = Field(default=10, ge=1, le=100_000)
    concurrent_integrations: int = Field(default=4, ge=0, le=1_000)


class QuotasPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calls_per_min: int | None = Field(default=None, ge=0, le=100_000)
    api_requests_per_s: int | None = Field(default=None, ge=1, le=100_000)
    concurrent_integrations: int | None = Field(default=None, ge=0, le=1_000)


class Retention(BaseModel):
    """Days each kind of data is kept (0 = not kept at all), set independently."""

    model_config = ConfigDict(extra="forbid")

    transcripts_days: int = Field(default=30, ge=0, le=3650)
    recordings_days: int = Field(default=0, ge=0, le=3650)
    events_days: int = Field(default=365, ge=0, le=3650)
    actions_days: int = Field(default=365, ge=0, le=3650)


class RetentionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transcripts_days: int | None = Field(default=None, ge=0, le=3650)
    recordings_days: int | None = Field(default=None, ge=0, le=3650)
    events_days: int | None = Field(default=None, ge=0, le=3650)
    actions_days: int | None = Field(default=None, ge=0, le=3650)


class TenantCreate(BaseModel):
    """A new tenant; the cloud mints the id unless ops gives one."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = Field(default=None, pattern=TENANT_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    tier: Tier = "standard"
    region: Region = "eu"
    quotas: Quotas = Field(default_factory=Quotas)
    retention: Retention = Field(default_factory=Retention)

    @field_validator("name")
    @classmethod
    def _stripped(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("name must not be blank")
        return v.strip()


class TenantPatch(BaseModel):
    """Fields to change; quotas and retention merge field by field."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    tier: Tier | None = None
    quotas: QuotasPatch | None = None
    retention: RetentionPatch | None = None


class Tenant(BaseModel):
    tenant_id: str
    name: str
    tier: Tier
    region: Region
    quotas: Quotas
    retention: Retention
    created_at: datetime
    updated_at: datetime


def _tenant(row: dict[str, Any]) -> Tenant:
    return Tenant.model_validate(
        {**row, "quotas": json_value(row["quotas"]), "retention": json_value(row["retention"])})


def _snapshot(t: Tenant) -> dict[str, Any]:
    return t.model_dump(mode="json")


def check_tenant_id(tenant_id: str) -> str:
    if not _TENANT_ID_RE.match(tenant_id):
        raise ControlError("not_found", "tenant.not_found", "no such tenant")
    return tenant_id


def create_tenant(db: Database, ctx: ChangeContext, body: TenantCreate,
                  regions: tuple[Region, ...] = ALL_REGIONS) -> Tenant:
    """Insert the tenant and its audit entry in one transaction; 409 if the id is taken,
    422 if its region is not one this deployment serves (its data would live elsewhere)."""
    if body.region not in regions:
        raise ControlError("invalid", "tenant.region_not_served",
                           f"region {body.region!r} is not served by this deployment (it "
                           f"serves {', '.join(regions)}); create the tenant in the "
                           f"{body.region} deployment")
    tenant = Tenant(tenant_id=body.tenant_id or new_id("ten"), name=body.name, tier=body.tier,
                    region=body.region, quotas=body.quotas, retention=body.retention,
                    created_at=ctx.now, updated_at=ctx.now)
    try:
        with db.tenant(tenant.tenant_id) as tx:
            tx.execute(
                "INSERT INTO tenants (tenant_id, name, tier, region, quotas, retention, "
                "created_at, updated_at) VALUES (:tenant_id, :name, :tier, :region, :quotas, "
                ":retention, :now, :now)",
                {"name": tenant.name, "tier": tenant.tier, "region": tenant.region,
                 "quotas": tenant.quotas.model_dump(), "now": ctx.now,
                 "retention": tenant.retention.model_dump()})
            record(tx, ctx, "tenant.create", f"tenants/{tenant.tenant_id}", None,
                   _snapshot(tenant))
    except UniqueViolation as exc:
        raise ControlError("conflict", "tenant.exists",
                           f"tenant {tenant.tenant_id} already exists") from exc
    return tenant


def read_tenant(tx: Transaction) -> Tenant | None:
    """The transaction's own tenant row."""
    row = tx.fetch_one("SELECT * FROM tenants WHERE tenant_id = :tenant_id")
    return _tenant(row) if row else None


@contextlib.contextmanager
def existing_tenant(db: Database, tenant_id: str) -> Iterator[Transaction]:
    """A transaction in `tenant_id`'s scope; not_found unless that tenant exists."""
    with db.tenant(check_tenant_id(tenant_id)) as tx:
        if read_tenant(tx) is None:
            raise ControlError("not_found", "tenant.not_found", "no such tenant")
        yield tx


def get_tenant(db: Database, tenant_id: str) -> Tenant:
    with db.tenant(check_tenant_id(tenant_id)) as tx:
        tenant = read_tenant(tx)
    if tenant is None:
        raise ControlError("not_found", "tenant.not_found", "no such tenant")
    return tenant


def list_tenants(db: Database, limit: int = 500) -> list[Tenant]:
    """Every tenant (an ops read, so the fleet scope)."""
    with db.fleet() as tx:
        rows = tx.fetch_all("SELECT * FROM tenants ORDER BY tenant_id LIMIT :limit",
                            {"limit": limit})
    return [_tenant(r) for r in rows]


class TenantChange(BaseModel):
    """A tenant as it was and as a PATCH left it."""

    before: Tenant
    after: Tenant

    @property
    def policy_changed(self) -> bool:
        """True when the boxes must hear of it: the policy in their desired state differs."""
        return tenant_policy(self.before) != tenant_policy(self.after)


def tenant_policy(tenant: Tenant) -> TenantPolicy:
    """The quotas and retention only the box can enforce (calls and transcripts live
    there), as every desired-state document carries them."""
    return TenantPolicy(calls_per_min=tenant.quotas.calls_per_min,
                        transcripts_days=tenant.retention.transcripts_days,
                        recordings_days=tenant.retention.recordings_days)


def current_policy(tx: Transaction) -> TenantPolicy | None:
    """The policy of the transaction's tenant as stored now; None if there is no such row."""
    tenant = read_tenant(tx)
    return tenant_policy(tenant) if tenant else None


def change_tenant(tx: Transaction, ctx: ChangeContext, patch: TenantPatch) -> TenantChange:
    """Apply `patch` to the transaction's tenant and audit before/after; unchanged fields
    stay. In the caller's transaction, so it can plan the desired states that follow."""
    before = read_tenant(tx)
    if before is None:
        raise ControlError("not_found", "tenant.not_found", "no such tenant")
    quotas = before.quotas.model_copy(
        update=patch.quotas.model_dump(exclude_none=True) if patch.quotas else {})
    retention = before.retention.model_copy(
        update=patch.retention.model_dump(exclude_none=True) if patch.retention else {})
    after = before.model_copy(update={
        "name": patch.name or before.name, "tier": patch.tier or before.tier,
        "quotas": Quotas.model_validate(quotas.model_dump()),
        "retention": Retention.model_validate(retention.model_dump()),
        "updated_at": ctx.now})
    tx.execute(
        "UPDATE tenants SET name = :name, tier = :tier, quotas = :quotas, "
        "retention = :retention, updated_at = :now WHERE tenant_id = :tenant_id",
        {"name": after.name, "tier": after.tier, "quotas": after.quotas.model_dump(),
         "retention": after.retention.model_dump(), "now": ctx.now})
    record(tx, ctx, "tenant.update", f"tenants/{before.tenant_id}", _snapshot(before),
           _snapshot(after))
    return TenantChange(before=before, after=after)
