"""What an operator can do about actions and integrations, each change audited.

retry now (a waiting or dead-lettered action goes out on the next tick, with a fresh
attempt budget if it was dead), skip (cancel it), mark resolved (someone did it by hand),
replay an order (plan its stored events again), and configure an integration. Every one
is a lifecycle transition or a config write plus its audit entry, in one transaction.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from cloud.control.audit import ChangeContext, record
from cloud.db import Database
from cloud.integration.action_store import (
    IntegrationConfig,
    config_document,
    ensure_breaker,
    get_action,
    read_stored,
    save_transition,
)
from cloud.integration.lifecycle import RetryPolicy, apply
from cloud.integration.order_inbox import order_known, replay_order
from cloud.integration.secret_box import SecretBox
from sync.contracts.actions import Action

Operation = Literal["retry_now", "skip", "resolve"]


class OrderNotFound(LookupError):
    """No event of this order reached the integration plane."""


class KindChange(ValueError):
    """An integration id keeps its kind: its queued actions were planned for that kind."""


def operate(db: Database, tenant_id: str, action_id: str, op: Operation, ctx: ChangeContext,
            reason: str | None = None, policy: RetryPolicy | None = None) -> Action:
    """Apply an operator transition; IllegalTransition/ActionNotFound leave it unchanged."""
    with db.tenant(tenant_id) as tx:
        before = get_action(tx, action_id, lock=True)
        after, event = apply(before, op, ctx.now, actor=ctx.actor, policy=policy or RetryPolicy(),
                             reason=reason,
                             result={"resolved_by": ctx.actor} if op == "resolve" else None)
        save_transition(tx, before, after, event)
        record(tx, ctx, f"integration.action.{op}", f"actions/{action_id}",
               {"state": before.state}, {"state": after.state, "reason": reason})
    return after


def replay(db: Database, tenant_id: str, order_id: str, ctx: ChangeContext,
           policy: RetryPolicy | None = None) -> list[Action]:
    """Replay an order's actions from its events (see `order_inbox.replay_order`)."""
    if not order_known(db, tenant_id, order_id):
        raise OrderNotFound(order_id)
    touched = replay_order(db, tenant_id, order_id, ctx.now, ctx.actor, policy)
    with db.tenant(tenant_id) as tx:
        record(tx, ctx, "integration.order.replay", f"orders/{order_id}", None,
               {"actions": [a.action_id for a in touched]})
    return touched


class IntegrationView(BaseModel):
    """An integration as the API shows it: never its secret."""

    integration_id: str
    kind: str
    enabled: bool
    target: str


def view(integration_id: str, kind: str, document: dict[str, Any],
         enabled: bool) -> IntegrationView:
    """The public part of a config document (stored or new); reads no secret."""
    target = (f"{document['base_url']} location {document['location_id']}"
              if kind == "square" else str(document["url"]))
    return IntegrationView(integration_id=integration_id, kind=kind, enabled=enabled,
                           target=target)


def put_integration(db: Database, tenant_id: str, integration_id: str,
                    config: IntegrationConfig, enabled: bool, ctx: ChangeContext,
                    secrets: SecretBox) -> IntegrationView:
    """Create or replace a tenant's integration (its breaker starts closed); its secret is
    stored sealed with `secrets`."""
    with db.tenant(tenant_id) as tx:
        old = read_stored(tx, integration_id)
        if old is not None and old.kind != config.kind:
            raise KindChange(f"integration {integration_id} is a {old.kind} integration; "
                             "use a new id for a different kind")
        params = {"integration_id": integration_id, "kind": config.kind,
                  "config": config_document(config, secrets), "enabled": int(enabled),
                  "actor": ctx.actor, "now": ctx.now}
        if old is None:
            tx.execute(
                "INSERT INTO integration_configs (tenant_id, integration_id, kind, config, "
                "enabled, updated_by, updated_at) VALUES (:tenant_id, :integration_id, :kind, "
                ":config, :enabled, :actor, :now)", params)
        else:
            tx.execute(
                "UPDATE integration_configs SET kind = :kind, config = :config, "
                "enabled = :enabled, updated_by = :actor, updated_at = :now "
                "WHERE tenant_id = :tenant_id AND integration_id = :integration_id", params)
        ensure_breaker(tx, integration_id, ctx.now)
        shown = view(integration_id, config.kind, config.model_dump(mode="json"), enabled)
        before = view(integration_id, old.kind, old.document, old.enabled) if old else None
        record(tx, ctx, "integration.put", f"integrations/{integration_id}",
               before.model_dump() if before else None, shown.model_dump())
    return shown


def list_integrations(db: Database, tenant_id: str) -> list[IntegrationView]:
    """The tenant's integrations; needs no key (the secrets stay sealed)."""
    with db.tenant(tenant_id) as tx:
        ids = [r["integration_id"] for r in tx.fetch_all(
            "SELECT integration_id FROM integration_configs WHERE tenant_id = :tenant_id "
            "ORDER BY integration_id")]
        found = [(i, read_stored(tx, i)) for i in ids]
    return [view(i, c.kind, c.document, c.enabled) for i, c in found if c is not None]
