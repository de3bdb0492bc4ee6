"""Event schema: every fact that crosses from box to cloud is an immutable, versioned event."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from sync.contracts.errors import Correlation
from sync.contracts.order import Order

EVENT_SCHEMA_VERSION = "1.2"


class OrderSubmitted(BaseModel):
    """The caller confirmed the read-back and the box wrote the order durably."""

    type: Literal["order.submitted"] = "order.submitted"
    order: Order


class TicketPrinted(BaseModel):
    """The kitchen printer accepted the ticket of an order."""

    type: Literal["ticket.printed"] = "ticket.printed"
    order_id: str
    action_id: str
    printer: str
    printed_at: datetime


class TicketFailed(BaseModel):
    """The box gave up on a kitchen ticket (dead letter): staff must act, nothing will retry."""

    type: Literal["ticket.failed"] = "ticket.failed"
    order_id: str
    action_id: str
    printer: str
    failures: int
    error: str
    failed_at: datetime


class OrderCancelled(BaseModel):
    """A platform command cancelled the order; `ticket` says what the kitchen saw of it."""

    type: Literal["order.cancelled"] = "order.cancelled"
    order_id: str
    command_id: str
    reason: str
    ticket: Literal["never_printed", "cancel_slip_queued"]


class OrderSuperseded(BaseModel):
    """A platform command replaced the order; the replacement keeps its number."""

    type: Literal["order.superseded"] = "order.superseded"
    order_id: str
    command_id: str
    replacement: Order
    action_id: str = Field(description="the print action of the AMENDED ticket")


class TicketReprintRequested(BaseModel):
    """A platform command asked for the order's ticket again (printed marked REPRINT)."""

    type: Literal["ticket.reprint_requested"] = "ticket.reprint_requested"
    order_id: str
    command_id: str
    action_id: str


EventData = Annotated[
    OrderSubmitted | TicketPrinted | TicketFailed | OrderCancelled | OrderSuperseded
    | TicketReprintRequested,
    Field(discriminator="type"),
]


class EventEnvelope(BaseModel):
    """An outbox event: id for idempotent ingest, per-device sequence for in-order drain."""

    schema_version: str = Field(default=EVENT_SCHEMA_VERSION, pattern=r"^1\.\d+$")
    event_id: str
    tenant_id: str
    device_id: str
    seq: int = Field(ge=1, description="per-device outbox sequence, gapless")
    occurred_at: datetime
    correlation: Correlation
    data: EventData
