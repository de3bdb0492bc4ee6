"""The one verdict every fault test ends with, each fact read at its own source of truth.

Printed exactly once: counted from the emulator's ticket files (written only on a cut).
In the cloud exactly once: counted in the cloud's database. In order: the cloud's events
of the device, in the order it stored them, are the box's outbox seqs ascending. Nothing
left behind: every print action succeeded and every outbox event is acked on the box.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.edge.printer_emulator import ReceivedTicket
from sync.contracts.order import Order
from tests.faults.stack import FaultStack, wait_until

ORDER_ID = re.compile(r"\bord_[0-9A-HJKMNP-TV-Z]{26}\b")


def _read(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:  # type: ignore[type-arg]
    """Read a live WAL database from outside its owning processes."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as c:
        return c.execute(sql, params).fetchall()


def box_backlog(stack: FaultStack) -> tuple[int, int]:
    """(ticket actions not yet printed, outbox events not yet acked) on the box."""
    unprinted = _read(stack.box_db, "SELECT COUNT(*) FROM actions "
                      "WHERE kind = 'print_ticket' AND status != 'succeeded'")[0][0]
    unacked = _read(stack.box_db, "SELECT COUNT(*) FROM outbox WHERE acked_at IS NULL")[0][0]
    return int(unprinted), int(unacked)


def printed_tickets(tickets_dir: Path) -> Counter[str]:
    """How many complete tickets the emulator printed per order id."""
    counts: Counter[str] = Counter()
    for path in tickets_dir.glob("ticket-*.json"):
        ticket = ReceivedTicket.model_validate_json(path.read_text(encoding="utf-8"))
        ids = set(ORDER_ID.findall(ticket.text))
        counts.update(ids or {f"<no order id in {path.name}>"})
    return counts


def cloud_seqs(stack: FaultStack) -> list[int]:
    rows = _read(stack.cloud_db, "SELECT seq FROM events WHERE device_id = ? ORDER BY rowid",
                 (stack.device_id,))
    return [int(r[0]) for r in rows]


def cloud_events(stack: FaultStack) -> int:
    """How many events of the device the cloud has stored (cheap enough to poll)."""
    return int(_read(stack.cloud_db, "SELECT COUNT(*) FROM events WHERE device_id = ?",
                     (stack.device_id,))[0][0])


@dataclass(frozen=True)
class Verdict:
    """Figures of a passed verdict, for the test's printed summary."""

    orders: int
    tickets: int
    cloud_events: int


def settle(stack: FaultStack, timeout: float) -> None:
    """Wait until the box has printed and synced everything (or fail saying what is left)."""
    wait_until(lambda: box_backlog(stack) == (0, 0), timeout,
               "every ticket printed and every outbox event acked",
               lambda: f"backlog (unprinted, unacked) = {box_backlog(stack)}; "
                       f"{stack.tail(stack.edge, 5)}\n{stack.tail(stack.sync, 5)}")


def assert_exactly_once(stack: FaultStack, orders: Sequence[Order], *,
                        settle_s: float | None = None, context: str = "") -> Verdict:
    """Every order printed once, stored once in the cloud, events in seq order, all acked.

    Waits first for the box to finish (by default 3 minutes plus 0.1 s per order)."""
    settle(stack, settle_s if settle_s is not None else 180 + 0.1 * len(orders))
    problems: list[str] = []
    wanted = {o.order_id for o in orders}
    if len(wanted) != len(orders):
        problems.append("the same order id was submitted twice")

    tickets = printed_tickets(stack.tickets_dir)
    wrong = {oid: n for oid, n in tickets.items() if oid in wanted and n != 1}
    missing = sorted(wanted - set(tickets))
    stray = {oid: n for oid, n in tickets.items() if oid not in wanted}
    if wrong or missing or stray:
        problems.append(f"tickets: printed more than once {_some(wrong)}; never printed "
                        f"{_some(missing)}; not ours {_some(stray)}")

    stored = dict(_read(stack.cloud_db, "SELECT order_id, COUNT(*) FROM orders "
                        "WHERE device_id = ? GROUP BY order_id", (stack.device_id,)))
    if stored.keys() != wanted or any(n != 1 for n in stored.values()):
        problems.append(f"cloud orders: missing {_some(sorted(wanted - stored.keys()))}; "
                        f"unexpected {_some(sorted(stored.keys() - wanted))}")
    per_type = _read(stack.cloud_db, "SELECT type, json_extract(body, '$.data.order_id'), "
                     "json_extract(body, '$.data.order.order_id'), COUNT(*) FROM events "
                     "WHERE device_id = ? GROUP BY 1, 2, 3", (stack.device_id,))
    events = {(t, a or b): n for t, a, b, n in per_type}
    for kind in ("order.submitted", "ticket.printed"):
        off = {oid: events.get((kind, oid), 0) for oid in wanted
               if events.get((kind, oid), 0) != 1}
        if off:
            problems.append(f"cloud {kind} events per order != 1: {_some(off)}")
    unprinted = _read(stack.cloud_db, "SELECT COUNT(*) FROM orders WHERE device_id = ? "
                      "AND ticket_printed_at IS NULL", (stack.device_id,))[0][0]
    if unprinted:
        problems.append(f"{unprinted} cloud orders without ticket_printed_at")

    seqs = cloud_seqs(stack)
    box_seqs = [int(r[0]) for r in _read(stack.box_db, "SELECT seq FROM outbox ORDER BY seq")]
    if seqs != box_seqs:
        backwards = [(a, b) for a, b in zip(seqs, seqs[1:], strict=False) if b <= a]
        problems.append(f"cloud seqs are not the box's outbox in order: {len(seqs)} stored vs "
                        f"{len(box_seqs)} on the box; out of order {_some(backwards)}")
    if box_backlog(stack) != (0, 0):
        problems.append(f"box backlog after settling: {box_backlog(stack)}")
    assert not problems, f"{context}\n" + "\n".join(problems)
    return Verdict(len(orders), sum(tickets.values()), len(seqs))


def _some(items: object, n: int = 8) -> str:
    seq = list(items.items()) if isinstance(items, dict) else list(items)  # type: ignore[attr-defined]
    more = f" (+{len(seq) - n} more)" if len(seq) > n else ""
    return f"{seq[:n]}{more}" if seq else "none"
