"""Spoken and printed wording of order lines, from the menu's names (never hard-coded)."""

from __future__ import annotations

from appliance.dialog.order_parser import ParsedLine
from blueprints.menu import Menu
from sync.contracts.order import LineModifier, OrderLine

_NUMBER_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                 "nine", "ten", "eleven", "twelve"]
_SPOKEN_KIND = {"add": "", "remove": "no ", "extra": "extra ", "light": "light "}


def spoken_number(n: int) -> str:
    return _NUMBER_NAMES[n] if 0 <= n < len(_NUMBER_NAMES) else str(n)


def join_words(parts: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def describe_line(line: ParsedLine, menu: Menu) -> str:
    """'one large pizza with pepperoni and no onions', 'two cokes'."""
    item = next(i for i in menu.items if i.id == line.item_id)
    name = item.name if line.quantity == 1 else item.plural
    words = [spoken_number(line.quantity)]
    if line.size and len(item.sizes) > 1:
        words.append(line.size)
    words.append(name)
    text = " ".join(words)
    if line.modifiers:
        mods = [_SPOKEN_KIND[k] + menu.options[o].name for k, o in line.modifiers]
        text += " with " + join_words(mods)
    return text


def describe_order(lines: list[ParsedLine], menu: Menu) -> str:
    return join_words([describe_line(li, menu) for li in lines])


def unit_price(line: ParsedLine, menu: Menu) -> int:
    item = next(i for i in menu.items if i.id == line.item_id)
    if item.sizes:
        return item.sizes[line.size or item.default_size or next(iter(item.sizes))]
    return item.price or 0


def spoken_money(cents: int, currency: str) -> str:
    dollars, rest = divmod(cents, 100)
    unit = {"USD": "dollars", "EUR": "euros", "GBP": "pounds"}.get(currency, currency)
    return f"{dollars} {unit}" + (f" and {rest} cents" if rest else "")


def to_order_lines(lines: list[ParsedLine], menu: Menu) -> list[OrderLine]:
    """Contract order lines with display names and prices for the store and the ticket."""
    out = []
    for n, li in enumerate(lines, start=1):
        item = next(i for i in menu.items if i.id == li.item_id)
        out.append(OrderLine(
            line_id=f"l{n}", item_id=li.item_id,
            name=(f"{li.size} {item.name}" if li.size and len(item.sizes) > 1 else item.name),
            quantity=li.quantity, size=li.size,
            modifiers=[LineModifier(kind=k, name=menu.options[o].name) for k, o in li.modifiers],  # type: ignore[arg-type]
            unit_price_cents=unit_price(li, menu),
        ))
    return out
