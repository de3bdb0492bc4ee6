"""The fixed tool set: one versioned input model and one output model per tool.

Blueprints may only name tools listed in `TOOLS`; the tool registry validates a call's
arguments against the input model before running it and the result against the output
model after, so conversation and execution cannot drift apart silently.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from sync.contracts.order import ModifierKind, OrderLine


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CartModifier(_Model):
    """A change to an item's default build, by canonical option id."""

    kind: ModifierKind
    option_id: str


class CartLine(_Model):
    """One line of the cart a call is building, in canonical menu ids (no prices yet)."""

    item_id: str
    quantity: int = Field(default=1, ge=1, le=99)
    size: str | None = None
    modifiers: list[CartModifier] = Field(default_factory=list)
    styles: list[str] = Field(default_factory=list, description="style ids, e.g. thin_crust")
    removed_styles: list[str] = Field(default_factory=list, description="style ids refused")
    declined: list[CartModifier] = Field(
        default_factory=list, description="qualified options refused: 'no extra cheese'")
    container: str | None = Field(default=None, description="container id, e.g. can")
    volume: str | None = Field(default=None, description="volume id")


class MenuLookupInput(_Model):
    query: str = Field(min_length=1, description="what the caller called it")


class MenuMatch(_Model):
    item_id: str
    name: str
    sizes: dict[str, int] = Field(default_factory=dict, description="size -> price in cents")
    price_cents: int | None = None
    options: list[str] = Field(default_factory=list)


class MenuLookupOutput(_Model):
    matches: list[MenuMatch]


class OrderAddItemInput(_Model):
    cart: list[CartLine] = Field(default_factory=list)
    lines: list[CartLine] = Field(min_length=1)


class OrderAddItemOutput(_Model):
    cart: list[CartLine]
    added: str = Field(description="the added lines as they are spoken")


class OrderUpdateItemInput(_Model):
    cart: list[CartLine] = Field(min_length=1)
    index: int = Field(ge=0)
    line: CartLine


class OrderUpdateItemOutput(_Model):
    cart: list[CartLine]
    updated: str = Field(description="the new line as it is spoken")


class OrderRemoveItemInput(_Model):
    cart: list[CartLine] = Field(min_length=1)
    index: int = Field(ge=0)


class OrderRemoveItemOutput(_Model):
    cart: list[CartLine]
    removed: str = Field(description="the removed line as it is spoken")


class OrderReadBackInput(_Model):
    cart: list[CartLine] = Field(min_length=1)


class OrderReadBackOutput(_Model):
    """What the caller confirms is exactly what order.submit receives: `lines`."""

    items: str = Field(description="the whole order as it is spoken")
    total: str = Field(description="the total as it is spoken")
    total_cents: int = Field(ge=0)
    currency: str = Field(min_length=3, max_length=3)
    lines: list[OrderLine] = Field(min_length=1)


class OrderSubmitInput(_Model):
    lines: list[OrderLine] = Field(min_length=1)


class OrderSubmitOutput(_Model):
    order_id: str
    number: int = Field(ge=1)
    total_cents: int = Field(ge=0)
    created: bool = Field(description="false when the idempotency key was seen before")


class HoursCheckInput(_Model):
    date: dt.date
    time: dt.time


class HoursCheckOutput(_Model):
    open: bool
    opens: dt.time | None = Field(default=None, description="that day's nearest opening")
    closes: dt.time | None = None


class ReservationCheckInput(_Model):
    date: dt.date
    time: dt.time
    party_size: int = Field(ge=1, le=99)


class ReservationCheckOutput(_Model):
    available: bool
    slot_start: dt.datetime = Field(description="local start of the booking slot")
    covers_left: int = Field(ge=0)


class ReservationBookInput(_Model):
    date: dt.date
    time: dt.time
    party_size: int = Field(ge=1, le=99)
    name: str = Field(min_length=1, max_length=80)
    phone: str | None = Field(default=None, description="defaults to the caller id")


class ReservationBookOutput(_Model):
    reservation_id: str
    slot_start: dt.datetime
    party_size: int
    name: str
    created: bool = Field(description="false when the idempotency key was seen before")


class HandoffTransferInput(_Model):
    reason: str
    summary: dict[str, str] = Field(default_factory=dict, description="warm handover notes")


class HandoffTransferOutput(_Model):
    follow_up_id: str
    status: Literal["recorded"]


class CallbackScheduleInput(_Model):
    reason: str
    summary: dict[str, str] = Field(default_factory=dict)
    phone: str | None = Field(default=None, description="defaults to the caller id")
    not_before: dt.datetime | None = None


class CallbackScheduleOutput(_Model):
    follow_up_id: str
    status: Literal["recorded"]
    phone: str | None


class ToolContract(NamedTuple):
    """A tool's contract version and its input and output models."""

    version: str
    input: type[BaseModel]
    output: type[BaseModel]


# 1.1: cart and order lines carry styles, refusals, container and volume (additive).
TOOLS: dict[str, ToolContract] = {
    "menu.lookup": ToolContract("1.0", MenuLookupInput, MenuLookupOutput),
    "order.add_item": ToolContract("1.1", OrderAddItemInput, OrderAddItemOutput),
    "order.update_item": ToolContract("1.1", OrderUpdateItemInput, OrderUpdateItemOutput),
    "order.remove_item": ToolContract("1.1", OrderRemoveItemInput, OrderRemoveItemOutput),
    "order.read_back": ToolContract("1.1", OrderReadBackInput, OrderReadBackOutput),
    "order.submit": ToolContract("1.1", OrderSubmitInput, OrderSubmitOutput),
    "hours.check": ToolContract("1.0", HoursCheckInput, HoursCheckOutput),
    "handoff.transfer": ToolContract("1.0", HandoffTransferInput, HandoffTransferOutput),
    "callback.schedule": ToolContract("1.0", CallbackScheduleInput, CallbackScheduleOutput),
    "reservation.check": ToolContract("1.0", ReservationCheckInput, ReservationCheckOutput),
    "reservation.book": ToolContract("1.0", ReservationBookInput, ReservationBookOutput),
}

# Tools with an effect outside the call: a retry must carry the same key and change nothing.
NEEDS_IDEMPOTENCY_KEY = frozenset(
    {"order.submit", "reservation.book", "handoff.transfer", "callback.schedule"}
)


def tool_models() -> tuple[type[BaseModel], ...]:
    """Every input and output model, in `TOOLS` order: the roots of the `tools` surface."""
    return tuple(m for c in TOOLS.values() for m in (c.input, c.output))
