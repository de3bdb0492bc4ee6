"""Order events in, actions out: the integration plane's side of ingest, and replay.

Ingest (or any feeder) hands the stored box events to `record_order_events`; each new
event is kept (for replay) and planned into actions in the same tenant transaction, so
an event is either fully planned or not recorded at all and will be planned when it is
handed over again. Duplicates (same event id) change nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from cloud.db import Database, Transaction, json_value
from cloud.integration.action_store import (
    action_from_row,
    enabled_configs,
    insert_action,
    lock_clause,
    save_transition,
)
from cloud.integration.lifecycle import RetryPolicy, apply, new_action
from cloud.integration.planner import CloseOpen, Integration, NewAction, Step, order_id_of, plan
from sync.contracts.actions import Action
from sync.contracts.events import EventEnvelope, OrderSuperseded
from sync.structured_log import fields

log = logging.getLogger(__name__)


def _integrations(tx: Transaction) -> list[Integration]:
    return [Integration(r["integration_id"], r["kind"], json_value(r["config"]))
            for r in enabled_configs(tx)]


def _apply_steps(tx: Transaction, steps: list[Step], now: datetime, policy: RetryPolicy,
                 actor: str, revive: bool = False) -> list[Action]:
    """Carry out planned steps; `revive` (replay) also sends dead letters round again."""
    created: list[Action] = []
    for step in steps:
        if isinstance(step, NewAction):
            action, event = new_action(
                tenant_id=str(tx.tenant_id), order_id=step.order_id, kind=step.kind,
                integration_id=step.integration_id, key=step.key, payload=step.payload,
                now=now, policy=policy, actor=actor)
            if insert_action(tx, action, event):
                created.append(action)
            elif revive:
                row = tx.fetch_one(
                    "SELECT * FROM integration_actions WHERE tenant_id = :tenant_id "
                    "AND idem_key = :key" + lock_clause(tx), {"key": step.key})
                if row is not None and row["state"] == "dead_lettered":
                    before = action_from_row(row)
                    after, ev = apply(before, "replay", now, actor=actor, policy=policy,
                                      reason="order replay")
                    save_transition(tx, before, after, ev)
                    created.append(after)
        elif isinstance(step, CloseOpen):
            _close_open(tx, step, now, actor)
    return created


def _close_open(tx: Transaction, step: CloseOpen, now: datetime, actor: str) -> None:
    rows = tx.fetch_all(
        "SELECT * FROM integration_actions WHERE tenant_id = :tenant_id AND order_id = :order_id "
        "AND kind = :kind AND ((state IN ('pending', 'retry_scheduled') AND attempts = 0) "
        "OR state = 'dead_lettered')"
        + lock_clause(tx), {"order_id": step.order_id, "kind": step.kind})
    for row in rows:
        before = action_from_row(row)
        after, ev = apply(before, step.transition, now, actor=actor,
                          reason=f"order {step.transition}led by a box event")
        save_transition(tx, before, after, ev)


def record_order_events(db: Database, events: Sequence[EventEnvelope], now: datetime,
                        policy: RetryPolicy | None = None) -> list[Action]:
    """Keep each new order event and create the actions it calls for; the new actions."""
    policy = policy or RetryPolicy()
    by_tenant: dict[str, list[EventEnvelope]] = defaultdict(list)
    for event in events:
        if order_id_of(event) is not None:
            by_tenant[event.tenant_id].append(event)
    created: list[Action] = []
    for tenant_id, tenant_events in by_tenant.items():
        with db.tenant(tenant_id) as tx:
            integrations = _integrations(tx)
            for event in tenant_events:
                data = event.data
                replacement = (data.replacement.order_id if isinstance(data, OrderSuperseded)
                               else None)
                stored = tx.execute(
                    "INSERT INTO integration_order_events (event_id, tenant_id, order_id, "
                    "replacement_order_id, device_id, seq, type, body, recorded_at) VALUES "
                    "(:event_id, :tenant_id, :order_id, :replacement, :device_id, :seq, :type, "
                    ":body, :now) ON CONFLICT (event_id) DO NOTHING",
                    {"event_id": event.event_id, "order_id": order_id_of(event),
                     "replacement": replacement, "device_id": event.device_id,
                     "seq": event.seq, "type": data.type,
                     "body": event.model_dump(mode="json"), "now": now})
                if stored:
                    created += _apply_steps(tx, plan(event, integrations), now, policy,
                                            "planner")
    if created:
        log.info("actions planned", extra=fields(count=len(created)))
    return created


def replay_order(db: Database, tenant_id: str, order_id: str, now: datetime, actor: str,
                 policy: RetryPolicy | None = None) -> list[Action]:
    """Plan the order's stored events again with today's integrations: missing actions are
    created, dead letters go round again, cancellations still hold. The actions touched.

    Safe to repeat: keys are deterministic, and the POS dedupes by key, so a replay never
    makes a second POS order."""
    policy = policy or RetryPolicy()
    with db.tenant(tenant_id) as tx:
        rows = tx.fetch_all(
            "SELECT body FROM integration_order_events WHERE tenant_id = :tenant_id "
            "AND (order_id = :order_id OR replacement_order_id = :order_id) "
            "ORDER BY recorded_at, device_id, seq", {"order_id": order_id})
        integrations = _integrations(tx)
        touched: list[Action] = []
        for row in rows:
            event = EventEnvelope.model_validate(json_value(row["body"]))
            touched += _apply_steps(tx, plan(event, integrations), now, policy, actor,
                                    revive=True)
    return touched


def order_known(db: Database, tenant_id: str, order_id: str) -> bool:
    """Whether any event of this order reached the integration plane."""
    with db.tenant(tenant_id) as tx:
        return tx.fetch_one(
            "SELECT 1 AS one FROM integration_order_events WHERE tenant_id = :tenant_id "
            "AND (order_id = :order_id OR replacement_order_id = :order_id)",
            {"order_id": order_id}) is not None
