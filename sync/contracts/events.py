"""Event schema: every fact that crosses from box to cloud is an immutable, versioned event."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from sync.contracts.errors import Correlation
from sync.contracts.order import Order

EVENT_SCHEMA_VERSION = "1.1"


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


EventData = Annotated[OrderSubmitted | TicketPrinted, Field(discriminator="type")]


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
