"""The ingest's SQL: a group commit's events in a few set-based statements, both backends.

Three statements per event (insert, ticket update, device touch) were most of the
ingest worker's CPU in the fleet benchmark (docs/benchmarks.md); a batch now costs at
most five (events; look-up and insert of new orders; tickets; devices), plus up to three
per cancellation. Semantics are those of one event at a time: `events.event_id` (the
primary key) decides stored vs duplicate, also when two replicas race, and the order
effects of the newly stored events are applied in batch order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from cloud.db import Transaction
from sync.contracts.events import (
    EventEnvelope,
    OrderCancelled,
    OrderSubmitted,
    OrderSuperseded,
    TicketPrinted,
)
from sync.contracts.order import Order

IngestOutcome = Literal["stored", "duplicate"]


def iso(t: datetime) -> str:
    """A timestamp as the ingest tables store it: UTC, milliseconds, sortable text."""
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


def set_cancelled_sql(tx: Transaction) -> str:
    """The cloud's record of an order says cancelled (JSON edit differs per dialect)."""
    if tx.dialect == "postgresql":
        return ("UPDATE orders SET body = jsonb_set(body::jsonb, '{status}', "
                "'\"cancelled\"')::text WHERE order_id = :order_id AND tenant_id = :tenant_id")
    return ("UPDATE orders SET body = json_set(body, '$.status', 'cancelled') "
            "WHERE order_id = :order_id AND tenant_id = :tenant_id")


def _rows_from(tx: Transaction) -> str:
    """A FROM item yielding `value`, one JSON array per row, from the :rows parameter.

    The rows travel as one JSON parameter: SQLite looks each `:name` of a statement up
    in a list (thousands of them make parsing quadratic) and PostgreSQL would take one
    round trip per statement; `value ->> i` then reads the same on both.
    """
    if tx.dialect == "postgresql":
        return "jsonb_array_elements(CAST(:rows AS jsonb)) AS r(value)"
    return "json_each(:rows)"


def store_events(tx: Transaction, events: Sequence[EventEnvelope], now: datetime,
                 ) -> list[IngestOutcome]:
    """Insert the events that are new, apply them to their orders, mark their devices
    seen; the outcome of each, in the given order (an id twice in `events`: the first
    is stored, the second a duplicate)."""
    received_at = iso(now)
    inserted = _insert_events(tx, events, received_at) if events else set()
    outcomes: list[IngestOutcome] = []
    stored: list[EventEnvelope] = []
    for event in events:
        if event.event_id in inserted:
            inserted.discard(event.event_id)  # a second copy in the batch is a duplicate
            stored.append(event)
            outcomes.append("stored")
        else:
            outcomes.append("duplicate")
    _apply_to_orders(tx, stored)
    # Sorted: replicas upserting the same devices lock their rows in one order.
    touched = sorted({(e.tenant_id, e.device_id) for e in stored})
    if touched:
        tx.execute(
            "INSERT INTO devices(tenant_id, device_id, online, last_seen) SELECT value ->> 0, "
            f"value ->> 1, 1, :now FROM {_rows_from(tx)} WHERE true "  # WHERE: SQLite's upsert
            "ON CONFLICT(tenant_id, device_id) DO UPDATE SET last_seen = excluded.last_seen",
            {"rows": json.dumps(touched), "now": received_at})
    return outcomes


def _insert_events(tx: Transaction, events: Sequence[EventEnvelope], received_at: str,
                   ) -> set[str]:
    """The ids this statement inserted (RETURNING lists only rows the conflict let in);
    rows go in in batch order, so SQLite's rowid order is arrival order."""
    rows = json.dumps([(e.event_id, e.tenant_id, e.device_id, e.seq, e.data.type,
                        e.model_dump_json()) for e in events])
    returned = tx.fetch_all(
        "INSERT INTO events(event_id, tenant_id, device_id, seq, type, body, received_at) "
        "SELECT value ->> 0, value ->> 1, value ->> 2, CAST(value ->> 3 AS BIGINT), "
        f"value ->> 4, value ->> 5, :received_at FROM {_rows_from(tx)} WHERE true "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        {"rows": rows, "received_at": received_at})
    return {str(r["event_id"]) for r in returned}


def _apply_to_orders(tx: Transaction, stored: Sequence[EventEnvelope]) -> None:
    """Order rows in batch order; kitchen-ticket times in one statement at the end.

    New orders are written together until a cancellation comes, which first writes the
    ones before it, so a cancel still finds exactly the orders it found one event at a
    time. Applying the tickets last gives what one event at a time gives: every event of
    the batch is in the events table already, so an order written here picks up a ticket
    printed after it (the same look-up a replayed ticket relies on), and the UPDATE
    keeps an order's first ticket time (COALESCE).
    """
    printed: dict[tuple[str, str], str] = {}
    new_orders: list[tuple[Order, int]] = []
    for event in stored:
        data = event.data
        if isinstance(data, OrderSubmitted):
            new_orders.append((data.order, event.seq))
        elif isinstance(data, TicketPrinted):
            printed.setdefault((event.tenant_id, data.order_id), iso(data.printed_at))
        elif isinstance(data, OrderCancelled | OrderSuperseded):  # the box's record
            _insert_orders(tx, new_orders)
            new_orders = []
            tx.execute(set_cancelled_sql(tx), {"order_id": data.order_id,
                                               "tenant_id": event.tenant_id})
            if isinstance(data, OrderSuperseded):
                new_orders.append((data.replacement, event.seq))
    _insert_orders(tx, new_orders)
    if printed:
        tx.execute(
            "UPDATE orders SET ticket_printed_at = COALESCE(orders.ticket_printed_at, "
            "v.printed) FROM (SELECT value ->> 0 AS tenant_id, value ->> 1 AS order_id, "
            f"value ->> 2 AS printed FROM {_rows_from(tx)}) AS v "
            "WHERE orders.order_id = v.order_id AND orders.tenant_id = v.tenant_id",
            {"rows": json.dumps([(t, o, p) for (t, o), p in printed.items()])})


def _insert_orders(tx: Transaction, orders: Sequence[tuple[Order, int]]) -> None:
    """Write new orders (each with the seq of the event that carried it), existing ids
    left as they are, with the time of a ticket printed for them that is stored already."""
    if not orders:
        return
    printed = _tickets_stored_already(tx, orders)
    rows = json.dumps([(o.order_id, o.tenant_id, o.device_id, o.number, o.model_dump_json(),
                        printed.get(o.order_id), iso(o.created_at)) for o, _ in orders])
    tx.execute(
        "INSERT INTO orders(order_id, tenant_id, device_id, number, body, ticket_printed_at, "
        "created_at) SELECT value ->> 0, value ->> 1, value ->> 2, CAST(value ->> 3 AS "
        f"INTEGER), value ->> 4, value ->> 5, value ->> 6 FROM {_rows_from(tx)} WHERE true "
        "ON CONFLICT (order_id) DO NOTHING", {"rows": rows})


def _tickets_stored_already(tx: Transaction, orders: Sequence[tuple[Order, int]],
                            ) -> dict[str, str]:
    """Order id -> first ticket time, for orders whose ticket.printed is stored already.

    A ticket.printed stored before its order (the box drains in order, so only after a
    replay) is not lost. It comes from the same box after the order (a higher seq), so
    the (tenant, device, seq) index bounds each look-up to events stored out of order
    instead of scanning the whole table.
    """
    if tx.dialect == "postgresql":
        printed_at = "e.body::jsonb #>> '{data,printed_at}'"
        order_of = "e.body::jsonb #>> '{data,order_id}'"
    else:
        printed_at = "json_extract(e.body, '$.data.printed_at')"
        order_of = "json_extract(e.body, '$.data.order_id')"
    rows = tx.fetch_all(
        f"SELECT v.order_id AS order_id, (SELECT MIN({printed_at}) FROM events e "
        "WHERE e.tenant_id = v.tenant_id AND e.device_id = v.device_id AND e.seq > v.seq "
        f"AND e.type = 'ticket.printed' AND {order_of} = v.order_id) AS printed "
        "FROM (SELECT value ->> 0 AS order_id, value ->> 1 AS tenant_id, value ->> 2 AS "
        f"device_id, CAST(value ->> 3 AS BIGINT) AS seq FROM {_rows_from(tx)}) AS v",
        {"rows": json.dumps([(o.order_id, o.tenant_id, o.device_id, seq)
                             for o, seq in orders])})
    return {str(r["order_id"]): iso(datetime.fromisoformat(str(r["printed"])))
            for r in rows if r["printed"]}
