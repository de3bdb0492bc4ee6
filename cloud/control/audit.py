"""The append-only audit log: who changed what, the state before and after, when, and why.

`record` is called by every repository write inside the same transaction as the change,
so a change and its audit entry commit or roll back together. The table refuses UPDATE
and DELETE on both backends (trigger; on PostgreSQL also no grant to the app role).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from cloud.db import Transaction, json_value
from sync.ids import new_id


@dataclass(frozen=True)
class ChangeContext:
    """Who is making a change, under which request id, and at what time (passed in)."""

    actor: str
    request_id: str | None
    now: datetime


class AuditEntry(BaseModel):
    """One change: actor, action (e.g. `tenant.create`), resource path, before and after."""

    entry_id: str
    tenant_id: str | None
    actor: str
    action: str
    resource: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    at: datetime
    request_id: str | None = Field(default=None)


def audit_id() -> str:
    return "aud_" + new_id("job").partition("_")[2]


def record(tx: Transaction, ctx: ChangeContext, action: str, resource: str,
           before: dict[str, Any] | None, after: dict[str, Any] | None,
           fleet_tenant_id: str | None = None) -> AuditEntry:
    """Append one entry in `tx`; its tenant is the transaction's (or `fleet_tenant_id`
    for a change made in the fleet scope, None for a fleet-level change)."""
    tenant_id = tx.tenant_id if tx.scope.kind == "tenant" else fleet_tenant_id
    entry = AuditEntry(entry_id=audit_id(), tenant_id=tenant_id, actor=ctx.actor, action=action,
                       resource=resource, before=before, after=after, at=ctx.now,
                       request_id=ctx.request_id)
    params: dict[str, object] = {
        "entry_id": entry.entry_id, "actor": entry.actor, "action": action,
        "resource": resource, "before": before, "after": after, "at": ctx.now,
        "request_id": ctx.request_id,
    }
    if tx.scope.kind == "fleet":
        params["tenant_id"] = tenant_id
    tx.execute(
        "INSERT INTO audit_log (entry_id, tenant_id, actor, action, resource, before, after, "
        "at, request_id) VALUES (:entry_id, :tenant_id, :actor, :action, :resource, :before, "
        ":after, :at, :request_id)", params)
    return entry


def _entry(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry.model_validate(
        {**row, "before": json_value(row["before"]), "after": json_value(row["after"])})


def tenant_entries(tx: Transaction, limit: int = 100) -> list[AuditEntry]:
    """The transaction's tenant's entries, newest first."""
    rows = tx.fetch_all(
        "SELECT * FROM audit_log WHERE tenant_id = :tenant_id "
        "ORDER BY at DESC, entry_id DESC LIMIT :limit", {"limit": limit})
    return [_entry(r) for r in rows]
