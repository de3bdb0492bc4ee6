"""Platform commands on an order (cancel, reprint, supersede), applied once per command id.

The cloud may deliver a command twice (an MQTT redelivery, an operator clicking again): the
`applied_commands` row, written in the same transaction as the effect and its outbox event,
makes the second delivery a `duplicate` with no effect. A rejected command (unknown order,
order already cancelled) leaves no row, so a corrected retry under the same id may apply.
These functions run inside a transaction that `LocalStore` opens.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel

from appliance.store import print_tickets
from appliance.store.print_tickets import TicketMark
from sync.contracts.events import (
    EventData,
    OrderCancelled,
    OrderSuperseded,
    TicketReprintRequested,
)
from sync.contracts.order import Order

CommandKind = Literal["cancel", "reprint", "supersede"]
Emit = Callable[[sqlite3.Connection, Order, EventData, datetime, str | None], None]
"""Appends an outbox event in the caller's transaction: (conn, order, data, now, action_id)."""


class CommandResult(BaseModel, frozen=True):
    """What a platform command did: applied, a duplicate of one applied before, or rejected
    with a reason for people; `action_id` is the print action it queued, if any."""

    command_id: str
    kind: CommandKind
    outcome: Literal["applied", "duplicate", "rejected"]
    order_id: str
    reason: str | None = None
    action_id: str | None = None
    replacement_order_id: str | None = None


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


def _duplicate(conn: sqlite3.Connection, command_id: str, kind: CommandKind,
               order_id: str) -> CommandResult | None:
    row = conn.execute(
        "SELECT kind, order_id, action_id, replacement_order_id FROM applied_commands "
        "WHERE command_id = ?", (command_id,)).fetchone()
    if row is None:
        return None
    first, first_order, action_id, replacement = row
    reason = f"command {command_id} was already applied ({first} of order {first_order})"
    return CommandResult(command_id=command_id, kind=kind, outcome="duplicate", order_id=order_id,
                         reason=reason, action_id=action_id, replacement_order_id=replacement)


def _record(conn: sqlite3.Connection, result: CommandResult, now: datetime) -> CommandResult:
    conn.execute(
        "INSERT INTO applied_commands(command_id, kind, order_id, action_id, "
        "replacement_order_id, applied_at) VALUES (?, ?, ?, ?, ?, ?)",
        (result.command_id, result.kind, result.order_id, result.action_id,
         result.replacement_order_id, _iso(now)),
    )
    return result


def _live_order(conn: sqlite3.Connection, order_id: str, command_id: str,
                kind: CommandKind) -> Order | CommandResult:
    """The order if a command may act on it, else the rejection that says why."""
    row = conn.execute("SELECT status, body FROM orders WHERE order_id = ?", (order_id,)).fetchone()
    reason = None
    if row is None:
        reason = f"unknown order {order_id}"
    elif row[0] in ("cancelled", "superseded"):
        reason = f"order {order_id} is already {row[0]}"
    if reason:
        return CommandResult(command_id=command_id, kind=kind, outcome="rejected",
                             order_id=order_id, reason=reason)
    return Order.model_validate_json(row[1])


def cancel(conn: sqlite3.Connection, emit: Emit, order_id: str, command_id: str, reason: str,
           now: datetime) -> CommandResult:
    """Cancel an order: tickets not yet sent never print; if one came out (or may have), a
    CANCELLED ticket tells the kitchen to stop."""
    if seen := _duplicate(conn, command_id, "cancel", order_id):
        return seen
    order = _live_order(conn, order_id, command_id, "cancel")
    if isinstance(order, CommandResult):
        return order
    print_tickets.cancel_unprinted(conn, order_id, f"cancelled by command {command_id}", now)
    action_id = None
    if print_tickets.any_sent(conn, order_id):
        action_id = print_tickets.add(conn, order_id, f"cmd:{command_id}", TicketMark.CANCELLED, now)
    cancelled = order.model_copy(update={"status": "cancelled"})
    conn.execute("UPDATE orders SET status = 'cancelled', body = ? WHERE order_id = ?",
                 (cancelled.model_dump_json(), order_id))
    emit(conn, cancelled, OrderCancelled(
        order_id=order_id, command_id=command_id, reason=reason,
        ticket="cancel_slip_queued" if action_id else "never_printed"), now, action_id)
    return _record(conn, CommandResult(command_id=command_id, kind="cancel", outcome="applied",
                                       order_id=order_id, action_id=action_id), now)


def reprint(conn: sqlite3.Connection, emit: Emit, order_id: str, command_id: str,
            now: datetime) -> CommandResult:
    """Print the order's ticket once more, headed REPRINT."""
    if seen := _duplicate(conn, command_id, "reprint", order_id):
        return seen
    order = _live_order(conn, order_id, command_id, "reprint")
    if isinstance(order, CommandResult):
        return order
    action_id = print_tickets.add(conn, order_id, f"cmd:{command_id}", TicketMark.REPRINT, now)
    emit(conn, order, TicketReprintRequested(order_id=order_id, command_id=command_id,
                                             action_id=action_id), now, action_id)
    return _record(conn, CommandResult(command_id=command_id, kind="reprint", outcome="applied",
                                       order_id=order_id, action_id=action_id), now)


def _replacement_problem(conn: sqlite3.Connection, old: Order, new: Order) -> str | None:
    if new.order_id == old.order_id:
        return "the replacement needs an order_id of its own"
    if (new.tenant_id, new.device_id) != (old.tenant_id, old.device_id):
        return "the replacement belongs to another tenant or device"
    if conn.execute("SELECT 1 FROM orders WHERE order_id = ?", (new.order_id,)).fetchone():
        return f"order {new.order_id} already exists"
    return None


def supersede(conn: sqlite3.Connection, emit: Emit, order_id: str, replacement: Order,
              command_id: str, now: datetime) -> CommandResult:
    """Replace an order: its unsent tickets are cancelled and the replacement, under the same
    number, prints headed AMENDED - replaces #N.

    orders.number stays UNIQUE among live orders: the superseded row's number column becomes
    minus its rowid (its body keeps the number the kitchen knows)."""
    if seen := _duplicate(conn, command_id, "supersede", order_id):
        return seen
    old = _live_order(conn, order_id, command_id, "supersede")
    if isinstance(old, CommandResult):
        return old
    if problem := _replacement_problem(conn, old, replacement):
        return CommandResult(command_id=command_id, kind="supersede", outcome="rejected",
                             order_id=order_id, reason=problem)
    new = replacement.model_copy(update={"number": old.number, "status": "submitted"})
    print_tickets.cancel_unprinted(conn, order_id, f"superseded by command {command_id}", now)
    retired = old.model_copy(update={"status": "cancelled"})
    conn.execute("UPDATE orders SET number = -rowid, status = 'superseded', body = ? "
                 "WHERE order_id = ?", (retired.model_dump_json(), order_id))
    conn.execute(
        "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (new.order_id, new.tenant_id, new.device_id, new.call_id, new.number, new.status,
         new.model_dump_json(), _iso(new.created_at)),
    )
    action_id = print_tickets.add(conn, new.order_id, f"cmd:{command_id}", TicketMark.AMENDED, now)
    emit(conn, retired, OrderSuperseded(order_id=order_id, command_id=command_id,
                                        replacement=new, action_id=action_id), now, action_id)
    return _record(conn, CommandResult(
        command_id=command_id, kind="supersede", outcome="applied", order_id=order_id,
        action_id=action_id, replacement_order_id=new.order_id), now)
