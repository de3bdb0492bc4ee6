"""Core data model of an order: what the caller confirmed, in menu-canonical terms."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

ModifierKind = Literal["add", "remove", "extra", "light"]


class LineModifier(BaseModel):
    """A change to an item's default build: "no onions" is remove, "extra cheese" is extra."""

    kind: ModifierKind
    name: str = Field(description="canonical option name from the tenant menu")


class OrderLine(BaseModel):
    """One line of an order, with canonical menu ids and a display name for tickets.

    Since 1.1 the line also carries styles, refused styles and extras, container and volume
    as fields; `notes` still says them in words, so a 1.0 reader loses nothing.
    """

    line_id: str
    item_id: str = Field(description="canonical menu item id")
    name: str = Field(description="display name, e.g. 'Pepperoni pizza'")
    quantity: int = Field(ge=1, le=99)
    size: str | None = None
    modifiers: list[LineModifier] = Field(default_factory=list)
    unit_price_cents: int = Field(ge=0, description="size or flat price plus surcharges")
    notes: str | None = None
    styles: list[str] = Field(default_factory=list, description="style names, e.g. 'thin crust'")
    removed_styles: list[str] = Field(
        default_factory=list, description="styles the caller refused: 'not thin crust'")
    declined: list[LineModifier] = Field(
        default_factory=list, description="qualified extras refused: 'no extra cheese' is extra/cheese")
    container: str | None = Field(default=None, description="container name, e.g. 'can'")
    volume: str | None = Field(default=None, description="volume name, e.g. '2 liter'")


class Order(BaseModel):
    """A confirmed order as the box wrote it, before any integration has touched it."""

    order_id: str
    tenant_id: str
    device_id: str
    call_id: str
    number: int = Field(ge=1, description="short ticket number the kitchen calls out")
    status: Literal["submitted", "cancelled"] = "submitted"
    caller: str | None = Field(default=None, description="caller id from the phone line")
    lines: list[OrderLine] = Field(min_length=1)
    total_cents: int = Field(ge=0)
    currency: str = Field(min_length=3, max_length=3)
    blueprint_hash: str
    created_at: datetime
