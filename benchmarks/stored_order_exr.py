"""A confirmed order from the box store written in PIZZA EXR notation (as `bench nlu` writes parses).

Order lines keep menu ids for items and sizes but display names for options, styles,
containers and volumes, so those are mapped back through the same menu first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from appliance.dialog.order_parser import ParsedLine, ParseResult
from benchmarks.exr import to_exr
from blueprints.menu import Menu, MenuTerm
from sync.contracts.order import Order, OrderLine


class UnknownName(ValueError):
    """An order line names something the menu does not have (a different menu was in force)."""


def _by_name(terms: Mapping[str, MenuTerm], name: str, what: str) -> str:
    for term_id, term in terms.items():
        if term.name == name:
            return term_id
    raise UnknownName(f"no {what} named {name!r} on the menu")


def parsed_line(line: OrderLine, menu: Menu) -> ParsedLine:
    """The stored line as the parser's line (canonical ids throughout)."""
    return ParsedLine(
        item_id=line.item_id, quantity=line.quantity, size=line.size,
        modifiers=tuple((m.kind, _by_name(menu.options, m.name, "option")) for m in line.modifiers),
        styles=tuple(_by_name(menu.styles, s, "style") for s in line.styles),
        removed_styles=tuple(_by_name(menu.styles, s, "style") for s in line.removed_styles),
        declined=tuple((m.kind, _by_name(menu.options, m.name, "option")) for m in line.declined),
        container=_by_name(menu.containers, line.container, "container") if line.container else None,
        volume=_by_name(menu.volumes, line.volume, "volume") if line.volume else None,
    )


def order_exr(order: Order | None, menu: Menu) -> str:
    """The order's EXR tree; no order (nothing confirmed) is the empty `(ORDER )`."""
    lines = [parsed_line(li, menu) for li in order.lines] if order is not None else []
    return to_exr(ParseResult(lines=lines), menu)


def _fill_size(line: OrderLine, menu: Menu) -> str | None:
    """The size the order tools give a line when the caller names none (appliance/dialog/order_tools.py)."""
    item = menu.item(line.item_id)
    return item.default_size or next(iter(item.sizes), None)


def without_filled_sizes(order: Order | None, menu: Menu, heard: str) -> Order | None:
    """The order minus sizes the box filled in itself: a line's size is dropped when it is the
    fill-in size and no phrase for it was heard from the caller. PIZZA's gold trees carry a
    SIZE only where the caller said one, so this is the order as spoken."""
    if order is None:
        return None
    said = " " + " ".join(re.findall(r"[a-z0-9']+", heard.lower())) + " "
    lines = []
    for line in order.lines:
        fill = _fill_size(line, menu)
        if line.size is not None and line.size == fill and fill in menu.sizes and not any(
                f" {p.lower()} " in said for p in menu.sizes[fill].phrases()):
            line = line.model_copy(update={"size": None})
        lines.append(line)
    return order.model_copy(update={"lines": lines})
