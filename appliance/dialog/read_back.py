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


def _label(line: ParsedLine, menu: Menu, plural: bool) -> str:
    """'large thin crust pizza', '2 liter cokes': size, volume and styles before the name."""
    item = menu.item(line.item_id)
    words = []
    if line.size and len(item.sizes) > 1:
        words.append(menu.size(line.size).name)
    if line.volume:
        words.append(menu.volumes[line.volume].name)
    words += [menu.styles[s].name for s in line.styles]
    words.append(item.plural if plural else item.name)
    return " ".join(words)


def _container(line: ParsedLine, menu: Menu) -> str | None:
    if not line.container:
        return None
    c = menu.containers[line.container]
    return f"in {c.plural or c.name + 's'}" if line.quantity > 1 else f"in a {c.name}"


def _extras(line: ParsedLine, menu: Menu) -> list[str]:
    """'no onions', 'extra cheese', 'no extra cheese', 'not thin crust', in that order."""
    out = [_SPOKEN_KIND[k] + menu.options[o].name for k, o in line.modifiers]
    out += [f"no {q} {menu.options[o].name}" for q, o in line.declined]
    out += [f"not {menu.styles[s].name}" for s in line.removed_styles]
    return out


def describe_line(line: ParsedLine, menu: Menu) -> str:
    """'one large pizza with pepperoni and no onions', 'two cokes in cans'."""
    text = f"{spoken_number(line.quantity)} {_label(line, menu, line.quantity != 1)}"
    container = _container(line, menu)
    if container:
        text += " " + container
    extras = _extras(line, menu)
    if extras:
        text += " with " + join_words(extras)
    return text


def describe_order(lines: list[ParsedLine], menu: Menu) -> str:
    return join_words([describe_line(li, menu) for li in lines])


def unit_price(line: ParsedLine, menu: Menu) -> int:
    """Price of one unit: the size's (or flat) price plus option and style surcharges."""
    item = menu.item(line.item_id)
    if item.sizes:
        base = item.sizes[line.size or item.default_size or next(iter(item.sizes))]
    else:
        base = item.price or 0
    extras = sum(menu.options[o].price for k, o in line.modifiers if k != "remove")
    return base + extras + sum(menu.styles[s].price for s in line.styles)


def spoken_money(cents: int, currency: str) -> str:
    dollars, rest = divmod(cents, 100)
    unit = {"USD": "dollars", "EUR": "euros", "GBP": "pounds"}.get(currency, currency)
    return f"{dollars} {unit}" + (f" and {rest} cents" if rest else "")


def to_order_lines(lines: list[ParsedLine], menu: Menu) -> list[OrderLine]:
    """Contract order lines with display names and prices for the store and the ticket.

    Styles, refusals, container and volume are fields (order 1.1); the display name and
    `notes` also say them in words, as they did in 1.0, so older readers lose nothing.
    """
    out = []
    for n, li in enumerate(lines, start=1):
        notes = [p for p in (_container(li, menu),) if p]
        notes += [f"no {q} {menu.options[o].name}" for q, o in li.declined]
        notes += [f"not {menu.styles[s].name}" for s in li.removed_styles]
        out.append(OrderLine(
            line_id=f"l{n}", item_id=li.item_id, name=_label(li, menu, plural=False),
            quantity=li.quantity, size=li.size,
            modifiers=[LineModifier(kind=k, name=menu.options[o].name) for k, o in li.modifiers],  # type: ignore[arg-type]
            unit_price_cents=unit_price(li, menu), notes="; ".join(notes) or None,
            styles=[menu.styles[s].name for s in li.styles],
            removed_styles=[menu.styles[s].name for s in li.removed_styles],
            declined=[LineModifier(kind=q, name=menu.options[o].name) for q, o in li.declined],  # type: ignore[arg-type]
            container=menu.containers[li.container].name if li.container else None,
            volume=menu.volumes[li.volume].name if li.volume else None,
        ))
    return out
