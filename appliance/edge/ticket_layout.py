"""What a kitchen ticket says and how each line looks, decided without touching a printer.

A cook reads the ticket at arm's length in a hot kitchen: the order number is printed
double size, every item bold and tall, and a removal ("NO ONIONS") is shouted, because a
missed negation is the mistake that sends a plate back.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import tzinfo
from typing import Literal

from sync.contracts.order import LineModifier, Order, OrderLine

Align = Literal["left", "center", "right"]

DEFAULT_COLUMNS = 42
"""Characters per line in font A on an 80 mm roll (python-escpos' default profile)."""


@dataclass(frozen=True)
class TicketLine:
    """One printed line; `double` is double width and height, `tall` double height only."""

    text: str
    bold: bool = False
    double: bool = False
    tall: bool = False
    align: Align = "left"


def _wrap(text: str, width: int, indent: str = "", hang: str = "") -> list[str]:
    """Wrap to the printable width so the printer never breaks a word for us."""
    return textwrap.wrap(
        text, width=width, initial_indent=indent, subsequent_indent=hang or indent,
        break_long_words=True, break_on_hyphens=False,
    ) or [indent.rstrip()]


def item_text(line: OrderLine) -> str:
    """'2x LARGE PEPPERONI PIZZA': quantity first, then size unless the name already says it."""
    name = line.name.strip()
    size = (line.size or "").strip()
    if size and not name.lower().startswith(size.lower()):
        name = f"{size} {name}"
    return f"{line.quantity}x {name.upper()}"


def modifier_line(modifier: LineModifier, columns: int) -> list[TicketLine]:
    """A modifier on its own indented line; removals are bold, tall and starred."""
    name = modifier.name.strip().upper()
    if modifier.kind == "remove":
        return [TicketLine(t, bold=True, tall=True)
                for t in _wrap(f"** NO {name} **", columns, "  ", "     ")]
    text = {"add": f"+ {name}", "extra": f"+ EXTRA {name}", "light": f"~ LIGHT {name}"}[
        modifier.kind
    ]
    return [TicketLine(t, bold=True) for t in _wrap(text, columns, "  ", "    ")]


def _rule(columns: int) -> TicketLine:
    return TicketLine("-" * columns)


def layout_ticket(order: Order, tz: tzinfo, columns: int = DEFAULT_COLUMNS) -> list[TicketLine]:
    """The kitchen ticket of `order`, top to bottom, with its time shown in `tz`."""
    if columns < 16:
        raise ValueError("a ticket needs at least 16 columns")
    lines = [
        TicketLine(f"ORDER #{order.number}", bold=True, double=True, align="center"),
        TicketLine(order.created_at.astimezone(tz).strftime("%H:%M"), bold=True, double=True,
                   align="center"),
    ]
    if order.caller:
        lines += [TicketLine(t, align="center") for t in _wrap(f"CALLER {order.caller}", columns)]
    if order.status == "cancelled":
        lines.append(TicketLine("*** CANCELLED ***", bold=True, double=True, align="center"))
    lines.append(_rule(columns))
    for line in order.lines:
        lines += [TicketLine(t, bold=True, tall=True)
                  for t in _wrap(item_text(line), columns, "", "   ")]
        for modifier in line.modifiers:
            lines += modifier_line(modifier, columns)
        if line.notes and line.notes.strip():
            lines += [TicketLine(t) for t in _wrap(f"NOTE: {line.notes.strip()}", columns,
                                                   "  ", "        ")]
        lines.append(TicketLine(""))
    items = sum(li.quantity for li in order.lines)
    lines += [
        _rule(columns),
        TicketLine(f"{items} ITEM{'S' if items != 1 else ''}", bold=True),
        TicketLine(order.order_id, align="center"),
    ]
    return lines


def ticket_text(lines: list[TicketLine]) -> str:
    """The ticket as plain text, one printed line per text line (logs and previews)."""
    return "\n".join(line.text for line in lines)
