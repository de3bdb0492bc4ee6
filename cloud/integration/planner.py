"""Which actions an order event calls for: a pure function of the event and the tenant's
enabled integrations, so replaying an order's events plans exactly the same actions.

Action keys are deterministic (order, kind, integration, event type), which makes
planning idempotent: planning the same event twice names the same keys, and the
repository keeps the first. The POS idempotency key is the action key, so even a
replayed action can never create a second POS order, nor cancel one twice.

A cancelled or superseded order closes its POS writes that were never sent and plans one
`pos_cancel` per Square integration; the cancel waits for a write that is under way
(`pos_cancel.py`), so it never overtakes the create.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cloud.integration.pos_square import square_order_body
from cloud.integration.webhooks import webhook_payload
from sync.contracts.actions import ActionKind
from sync.contracts.events import (
    EventEnvelope,
    OrderCancelled,
    OrderSubmitted,
    OrderSuperseded,
)
from sync.contracts.order import Order


@dataclass(frozen=True)
class Integration:
    """An enabled integration of a tenant, as much as planning needs of it."""

    integration_id: str
    kind: Literal["square", "webhook"]
    config: dict[str, Any]


@dataclass(frozen=True)
class NewAction:
    """Create this action unless one with the same key exists."""

    order_id: str
    kind: ActionKind
    integration_id: str
    key: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class CloseOpen:
    """Cancel or supersede the order's open actions of `kind` that were never sent (no
    attempt yet) or are dead-lettered: those must not reach the POS afterwards. One
    already attempted and waiting for a retry may have reached the POS (a timeout), so it
    is left to settle, and the order's `pos_cancel` follows it."""

    order_id: str
    kind: ActionKind
    transition: Literal["cancel", "supersede"]


Step = NewAction | CloseOpen


def order_id_of(event: EventEnvelope) -> str | None:
    """The order an event is about (None for events the integration plane ignores)."""
    data = event.data
    if isinstance(data, OrderSubmitted):
        return data.order.order_id
    if isinstance(data, OrderCancelled | OrderSuperseded):
        return data.order_id
    return None


def pos_write_key(order_id: str, integration_id: str) -> str:
    """The key (and Square idempotency key) of an order's write to one integration."""
    return f"{order_id}.pos_write.{integration_id}"


def pos_cancel_key(order_id: str, integration_id: str) -> str:
    """The key of an order's cancel on one integration: one per order, whatever the cause."""
    return f"{order_id}.pos_cancel.{integration_id}"


def _pos_writes(order: Order, integrations: list[Integration]) -> list[Step]:
    return [NewAction(order.order_id, "pos_write", i.integration_id,
                      pos_write_key(order.order_id, i.integration_id),
                      {"order": square_order_body(order, i.config["location_id"])})
            for i in integrations if i.kind == "square"]


def _pos_cancels(order_id: str, why: Literal["cancelled", "superseded"],
                 integrations: list[Integration]) -> list[Step]:
    return [NewAction(order_id, "pos_cancel", i.integration_id,
                      pos_cancel_key(order_id, i.integration_id),
                      {"write_key": pos_write_key(order_id, i.integration_id), "why": why})
            for i in integrations if i.kind == "square"]


def _webhooks(event: EventEnvelope, order_id: str, event_type: str, data: dict[str, Any],
              integrations: list[Integration]) -> list[Step]:
    return [NewAction(order_id, "webhook", i.integration_id,
                      f"{order_id}.webhook.{i.integration_id}.{event_type}",
                      webhook_payload(event_type, event.occurred_at, data))
            for i in integrations
            if i.kind == "webhook" and event_type in i.config.get("events", ())]


def plan(event: EventEnvelope, integrations: list[Integration]) -> list[Step]:
    """The steps `event` calls for, in order (closing old actions before creating new)."""
    data = event.data
    if isinstance(data, OrderSubmitted):
        order = data.order
        body = order.model_dump(mode="json")
        return [*_pos_writes(order, integrations),
                *_webhooks(event, order.order_id, "order.created", {"order": body},
                           integrations)]
    if isinstance(data, OrderCancelled):
        return [CloseOpen(data.order_id, "pos_write", "cancel"),
                *_pos_cancels(data.order_id, "cancelled", integrations),
                *_webhooks(event, data.order_id, "order.cancelled",
                           {"order_id": data.order_id, "reason": data.reason}, integrations)]
    if isinstance(data, OrderSuperseded):
        new = data.replacement
        return [CloseOpen(data.order_id, "pos_write", "supersede"),
                *_pos_cancels(data.order_id, "superseded", integrations),
                *_pos_writes(new, integrations),
                *_webhooks(event, data.order_id, "order.superseded",
                           {"order_id": data.order_id,
                            "replacement": new.model_dump(mode="json")}, integrations)]
    return []
