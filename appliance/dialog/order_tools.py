"""Order and menu tools, and the box's whole tool set.

The cart tools (menu.lookup, order.add_item/update_item/remove_item, order.read_back) are
pure: menu and cart in, cart out, so the dialog runs them in-process. order.submit writes
order + kitchen-ticket action + outbox event in one SQLite transaction.
"""

from __future__ import annotations

import logging

from appliance.dialog.cart_lines import parsed
from appliance.dialog.order_parser import OrderParser
from appliance.dialog.read_back import describe_order, to_order_lines, unit_price
from appliance.dialog.reservation_tools import booking_tools, follow_up_tools, hours_tools
from appliance.dialog.tool_registry import ToolContext, ToolFailure, ToolImpl, ToolRegistry
from appliance.store import LocalStore
from appliance.store.reservations import ReservationBook
from blueprints.menu import Menu
from blueprints.model import Blueprint
from sync.contracts.tool_schemas import (
    CartLine,
    MenuLookupInput,
    MenuLookupOutput,
    MenuMatch,
    OrderAddItemInput,
    OrderAddItemOutput,
    OrderReadBackInput,
    OrderReadBackOutput,
    OrderRemoveItemInput,
    OrderRemoveItemOutput,
    OrderSubmitInput,
    OrderSubmitOutput,
    OrderUpdateItemInput,
    OrderUpdateItemOutput,
)
from sync.structured_log import fields, log_context

log = logging.getLogger(__name__)

_CURRENCY_WORDS = {"USD": ("dollars", "cents"), "EUR": ("euros", "cents"), "GBP": ("pounds", "pence")}


def spoken_money(cents: int, currency: str) -> str:
    """'19 dollars and 48 cents'."""
    unit, sub = _CURRENCY_WORDS.get(currency, (currency, "cents"))
    whole, rest = divmod(cents, 100)
    return f"{whole} {unit}" + (f" and {rest} {sub}" if rest else "")


def _on_menu(menu: Menu, line: CartLine) -> CartLine:
    """The line with its default size filled in; ToolFailure if the menu cannot make it."""
    item = next((i for i in menu.items if i.id == line.item_id), None)
    if item is None:
        raise ToolFailure("menu.item_unknown", "validation", "We don't have that on our menu.")
    size = line.size or item.default_size or (next(iter(item.sizes)) if item.sizes else None)
    if (size is not None or item.sizes) and size not in item.sizes:
        raise ToolFailure("menu.size_unknown", "validation", f"The {item.name} doesn't come in that size.")
    options = [m.option_id for m in [*line.modifiers, *line.declined]]
    if any(o not in item.options for o in options) or any(
            m.kind not in ("extra", "light") for m in line.declined):
        raise ToolFailure("menu.option_unknown", "validation", f"We can't make the {item.name} that way.")
    if any(s not in item.styles for s in [*line.styles, *line.removed_styles]):
        raise ToolFailure("menu.style_unknown", "validation", f"We can't make the {item.name} that way.")
    if (line.container and line.container not in item.containers) or (
            line.volume and line.volume not in item.volumes):
        raise ToolFailure("menu.container_unknown", "validation",
                          f"The {item.name} doesn't come like that.")
    if line.quantity > menu.limit_for(item.id):
        raise ToolFailure("menu.over_limit", "validation",
                          f"We can take at most {menu.limit_for(item.id)} {item.plural} on one line.")
    return line.model_copy(update={"size": size})


def _at(cart: list[CartLine], index: int) -> CartLine:
    if index >= len(cart):
        raise ToolFailure("order.no_such_line", "validation", "I can't find that in your order.")
    return cart[index]


def cart_tools(bp: Blueprint) -> dict[str, ToolImpl]:
    """The pure order tools of a blueprint with a menu."""
    if bp.menu is None or bp.currency is None:
        return {}
    menu, currency = bp.menu, bp.currency
    parser = OrderParser(menu)

    def say(lines: list[CartLine]) -> str:
        return describe_order([parsed(li) for li in lines], menu)

    def lookup(args: MenuLookupInput, ctx: ToolContext) -> MenuLookupOutput:
        ids = {li.item_id for li in parser.parse(args.query).lines}
        return MenuLookupOutput(matches=[
            MenuMatch(item_id=i.id, name=i.name, sizes=dict(i.sizes), price_cents=i.price,
                      options=list(i.options)) for i in menu.items if i.id in ids])

    def add(args: OrderAddItemInput, ctx: ToolContext) -> OrderAddItemOutput:
        new = [_on_menu(menu, li) for li in args.lines]
        return OrderAddItemOutput(cart=[*args.cart, *new], added=say(new))

    def update(args: OrderUpdateItemInput, ctx: ToolContext) -> OrderUpdateItemOutput:
        _at(args.cart, args.index)
        line = _on_menu(menu, args.line)
        cart = [line if i == args.index else li for i, li in enumerate(args.cart)]
        return OrderUpdateItemOutput(cart=cart, updated=say([line]))

    def remove(args: OrderRemoveItemInput, ctx: ToolContext) -> OrderRemoveItemOutput:
        gone = _at(args.cart, args.index)
        cart = [li for i, li in enumerate(args.cart) if i != args.index]
        return OrderRemoveItemOutput(cart=cart, removed=say([gone]))

    def read_back(args: OrderReadBackInput, ctx: ToolContext) -> OrderReadBackOutput:
        lines = [parsed(li) for li in args.cart]
        total = sum(unit_price(li, menu) * li.quantity for li in lines)
        return OrderReadBackOutput(items=describe_order(lines, menu),
                                   total=spoken_money(total, currency), total_cents=total,
                                   currency=currency, lines=to_order_lines(lines, menu))

    return {"menu.lookup": lookup, "order.add_item": add, "order.update_item": update,
            "order.remove_item": remove, "order.read_back": read_back}


def submit_tools(store: LocalStore, bp: Blueprint, tenant_id: str,
                 device_id: str) -> dict[str, ToolImpl]:
    """order.submit: the order, its ticket action and its outbox event, atomically."""

    def submit(args: OrderSubmitInput, ctx: ToolContext) -> OrderSubmitOutput:
        order, created = store.submit_order(
            tenant_id=tenant_id, device_id=device_id, call_id=ctx.correlation.call_id or "unknown",
            caller=ctx.caller, lines=args.lines, currency=bp.currency or "USD",
            blueprint_hash=bp.content_hash, idempotency_key=ctx.idempotency_key or "",
            now=ctx.now)
        with log_context(order_id=order.order_id):
            log.info("order submitted", extra=fields(number=order.number, created=created,
                                                    total_cents=order.total_cents))
        return OrderSubmitOutput(order_id=order.order_id, number=order.number,
                                 total_cents=order.total_cents, created=created)

    return {"order.submit": submit}


def session_tools(bp: Blueprint) -> ToolRegistry:
    """The tools a dialog may run in-process: pure functions of the blueprint and their args."""
    return ToolRegistry(bp, {**cart_tools(bp), **hours_tools(bp)})


class BoxTools(ToolRegistry):
    """Every tool the box implements, gated by the blueprint's tools_allowed."""

    def __init__(self, store: LocalStore, blueprint: Blueprint, tenant_id: str,
                 device_id: str) -> None:
        self.book = ReservationBook(store)
        super().__init__(blueprint, {
            **cart_tools(blueprint), **hours_tools(blueprint),
            **submit_tools(store, blueprint, tenant_id, device_id),
            **booking_tools(self.book, blueprint, tenant_id, device_id),
            **follow_up_tools(self.book, tenant_id, device_id),
        })


# The name voice/service.py and older tests build the box's tool set by.
OrderTools = BoxTools
