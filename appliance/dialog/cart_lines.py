"""One order line in its shapes: the parser's `ParsedLine` and the tools' `CartLine` (and its JSON).

The dialog keeps the cart as cart-line JSON (what the tools take and return); wording,
prices and corrections work on `ParsedLine`, so every conversion lives here, lossless.
"""

from __future__ import annotations

from typing import Any

from appliance.dialog.order_parser import ParsedLine
from sync.contracts.tool_schemas import CartLine


def parsed(line: CartLine) -> ParsedLine:
    """A contract cart line as the parser's line, for the read-back wording and prices."""
    return ParsedLine(line.item_id, line.quantity, line.size,
                      tuple((m.kind, m.option_id) for m in line.modifiers),
                      tuple(line.styles), tuple(line.removed_styles),
                      tuple((m.kind, m.option_id) for m in line.declined),
                      line.container, line.volume)


def from_json(line: dict[str, Any]) -> ParsedLine:
    """Cart-line JSON (as the cart tools return it) as the parser's line."""
    return parsed(CartLine.model_validate(line))


def cart_line(line: ParsedLine) -> dict[str, Any]:
    """The parser's line as cart-line JSON; the 1.1 fields are left out while at their default."""
    out: dict[str, Any] = {
        "item_id": line.item_id, "quantity": line.quantity, "size": line.size,
        "modifiers": [{"kind": k, "option_id": o} for k, o in line.modifiers]}
    extra: dict[str, Any] = {
        "styles": list(line.styles), "removed_styles": list(line.removed_styles),
        "declined": [{"kind": k, "option_id": o} for k, o in line.declined],
        "container": line.container, "volume": line.volume}
    return {**out, **{k: v for k, v in extra.items() if v}}
