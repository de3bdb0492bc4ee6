"""What a kitchen ticket (or slip) says and how each line looks, decided without touching a printer.

A cook reads the ticket at arm's length in a hot kitchen: the order number is printed
double size, every item bold and tall, and every negation ("NO ONIONS", "NO EXTRA CHEESE",
"NOT THIN CRUST") is shouted, because a missed negation is the mistake that sends a plate back.
A ticket that is not the order's plain first one says so above the number: REPRINT,
AMENDED - replaces #N, a CANCELLED ticket, or "REPRINT - check for a duplicate" when the
box cannot tell whether the first copy came out.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Literal

from appliance.store.print_tickets import TicketMark
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


def _shouted(text: str, columns: int) -> list[TicketLine]:
    """A negation: bold, tall and starred, so it cannot be missed."""
    return [TicketLine(t, bold=True, tall=True)
            for t in _wrap(f"** {text.upper()} **", columns, "  ", "     ")]


def _bold(text: str, columns: int) -> list[TicketLine]:
    return [TicketLine(t, bold=True) for t in _wrap(text.upper(), columns, "  ", "    ")]


def modifier_line(modifier: LineModifier, columns: int) -> list[TicketLine]:
    """A modifier on its own indented line; removals are bold, tall and starred."""
    name = modifier.name.strip().upper()
    if modifier.kind == "remove":
        return _shouted(f"NO {name}", columns)
    text = {"add": f"+ {name}", "extra": f"+ EXTRA {name}", "light": f"~ LIGHT {name}"}[
        modifier.kind
    ]
    return _bold(text, columns)


def detail_lines(line: OrderLine, columns: int) -> list[TicketLine]:
    """Everything under the item: styles and volume (unless the name says them), modifiers,
    refused extras and styles (shouted), container, then notes not already printed."""
    named = f" {item_text(line).lower()} "
    out = [t for s in line.styles if f" {s.lower()} " not in named for t in _bold(s, columns)]
    for modifier in line.modifiers:
        out += modifier_line(modifier, columns)
    for declined in line.declined:
        out += _shouted(f"NO {declined.kind} {declined.name}", columns)
    for style in line.removed_styles:
        out += _shouted(f"NOT {style}", columns)
    if line.container:
        out += _bold(f"IN {line.container}", columns)
    if line.volume and f" {line.volume.lower()} " not in named:
        out += _bold(line.volume, columns)
    notes = [n.strip() for n in (line.notes or "").split(";") if n.strip()]
    notes = [n for n in notes if not _printed_above(n, line)]
    if notes:
        out += [TicketLine(t) for t in _wrap(f"NOTE: {'; '.join(notes)}", columns,
                                              "  ", "        ")]
    return out


def _printed_above(note: str, line: OrderLine) -> bool:
    """A note that only repeats a field (1.1 writers say them in notes too, for 1.0 readers)."""
    n = " ".join(note.lower().split())
    said = {f"no {d.kind} {d.name}".lower() for d in line.declined}
    said |= {f"not {s}".lower() for s in line.removed_styles}
    container = (line.container or "").lower()
    return n in said or bool(container) and n.startswith("in ") and container in n.split(" ", 2)[-1]


def _rule(columns: int) -> TicketLine:
    return TicketLine("-" * columns)


DUPLICATE_WARNING = "REPRINT - check for a duplicate"


def header_lines(order: Order, mark: TicketMark | None, may_have_printed: bool,
                 columns: int) -> list[TicketLine]:
    """What sets this ticket apart from the order's first one, shouted above the number."""
    out: list[TicketLine] = []
    if mark is TicketMark.REPRINT and not may_have_printed:
        out.append(TicketLine("REPRINT", bold=True, double=True, align="center"))
    elif mark is TicketMark.AMENDED:
        out += [TicketLine(t, bold=True, tall=True, align="center")
                for t in _wrap(f"AMENDED - replaces #{order.number}", columns)]
    if may_have_printed:
        out += [TicketLine(t, bold=True, tall=True, align="center")
                for t in _wrap(DUPLICATE_WARNING, columns)]
    return out


def layout_cancellation(order: Order, tz: tzinfo, columns: int = DEFAULT_COLUMNS,
                        may_have_printed: bool = False) -> list[TicketLine]:
    """The CANCELLED ticket of an order the kitchen already has: which order, what to stop."""
    if columns < 16:
        raise ValueError("a ticket needs at least 16 columns")
    lines = header_lines(order, None, may_have_printed, columns) + [
        TicketLine("CANCELLED", bold=True, double=True, align="center"),
        TicketLine(f"ORDER #{order.number}", bold=True, double=True, align="center"),
        TicketLine(order.created_at.astimezone(tz).strftime("%H:%M"), bold=True, align="center"),
    ]
    if order.caller:
        lines += [TicketLine(t, align="center") for t in _wrap(f"CALLER {order.caller}", columns)]
    lines += [_rule(columns), TicketLine("DO NOT MAKE:", bold=True)]
    for line in order.lines:
        lines += [TicketLine(t, bold=True) for t in _wrap(item_text(line), columns, "  ", "     ")]
    lines += [_rule(columns), TicketLine(order.order_id, align="center")]
    return lines


def layout_ticket(order: Order, tz: tzinfo, columns: int = DEFAULT_COLUMNS,
                  mark: TicketMark | None = None, may_have_printed: bool = False,
                  ) -> list[TicketLine]:
    """The kitchen ticket of `order`, top to bottom, with its time shown in `tz`; `mark` and
    `may_have_printed` add the header that says why it prints (again)."""
    if columns < 16:
        raise ValueError("a ticket needs at least 16 columns")
    if mark is TicketMark.CANCELLED:
        return layout_cancellation(order, tz, columns, may_have_printed)
    lines = header_lines(order, mark, may_have_printed, columns) + [
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
        lines += detail_lines(line, columns)
        lines.append(TicketLine(""))
    items = sum(li.quantity for li in order.lines)
    lines += [
        _rule(columns),
        TicketLine(f"{items} ITEM{'S' if items != 1 else ''}", bold=True),
        TicketLine(order.order_id, align="center"),
    ]
    return lines


def header_lines_for_slip(may_have_printed: bool, columns: int) -> list[TicketLine]:
    """A slip has no number or mark; only the duplicate warning can head it."""
    if not may_have_printed:
        return []
    return [TicketLine(t, bold=True, tall=True, align="center")
            for t in _wrap(DUPLICATE_WARNING, columns)]


def layout_slip(title: str, lines: list[str], at: datetime, tz: tzinfo,
                columns: int = DEFAULT_COLUMNS) -> list[TicketLine]:
    """A slip that is not an order (a handover summary): the title shouted like an order
    number, the time it was queued in `tz`, the first line (who to call) bold and tall."""
    if columns < 16:
        raise ValueError("a slip needs at least 16 columns")
    out = [TicketLine(t, bold=True, double=True, align="center")
           for t in _wrap(title.upper(), columns // 2)]
    out += [TicketLine(at.astimezone(tz).strftime("%H:%M"), bold=True, double=True,
                       align="center"), _rule(columns)]
    for index, text in enumerate(lines):
        if index == 0:
            out += [TicketLine(t, bold=True, tall=True) for t in _wrap(text, columns, "", "  ")]
        else:
            out += [TicketLine(t) for t in _wrap(text, columns, "", "  ")]
    out.append(_rule(columns))
    return out


def ticket_text(lines: list[TicketLine]) -> str:
    """The ticket as plain text, one printed line per text line (logs and previews)."""
    return "\n".join(line.text for line in lines)
