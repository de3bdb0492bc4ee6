"""The ingest's group commit (`CloudDb.ingest_events`, set-based SQL) on both backends.

A batch is a few statements now, not three per event; these pin down that it still means
what one event at a time meant: the first copy of an id is stored and the rest are
duplicates, order effects land (also a ticket stored before its order in one batch),
an order keeps its first ticket time, every device of the batch is marked seen, and a
large batch with awkward text arrives byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from cloud.control.db import CloudDb
from sync.contracts.errors import Correlation
from sync.contracts.events import (
    EventData,
    EventEnvelope,
    OrderCancelled,
    OrderSubmitted,
    OrderSuperseded,
    TicketPrinted,
)
from sync.contracts.order import Order, OrderLine
from sync.ids import new_id

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)


@pytest.fixture
def cloud_db(db_url: str, request: pytest.FixtureRequest) -> Iterator[CloudDb]:
    role = (request.getfixturevalue("pg_server").app_role
            if db_url.startswith("postgresql") else "voxeron_app")
    db = CloudDb.open(db_url, app_role=role)
    try:
        yield db
    finally:
        db.close()


def _order(tenant: str, device: str, number: int, name: str = "Coke") -> Order:
    return Order(order_id=new_id("ord"), tenant_id=tenant, device_id=device,
                 call_id=new_id("call"), number=number,
                 lines=[OrderLine(line_id="l1", item_id="coke", name=name, quantity=1,
                                  unit_price_cents=249)],
                 total_cents=249, currency="USD", blueprint_hash="bp", created_at=NOW)


def _event(tenant: str, device: str, seq: int, data: EventData) -> EventEnvelope:
    event_id = new_id("evt")
    return EventEnvelope(event_id=event_id, tenant_id=tenant, device_id=device, seq=seq,
                         occurred_at=NOW, correlation=Correlation(event_id=event_id), data=data)


def _printed(order: Order, at: datetime) -> TicketPrinted:
    return TicketPrinted(order_id=order.order_id, action_id=new_id("act"), printer="kitchen",
                         printed_at=at)


def test_one_batch_applies_every_effect_and_stores_an_id_once(cloud_db: CloudDb) -> None:
    tenant = new_id("ten")
    early, late, cancelled = (_order(tenant, "dev_a", n) for n in (1, 2, 3))
    ticket_first = _event(tenant, "dev_a", 2, _printed(early, NOW + timedelta(seconds=5)))
    batch = [
        ticket_first,  # replayed ahead of its order, in the same batch
        _event(tenant, "dev_a", 1, OrderSubmitted(order=early)),
        _event(tenant, "dev_b", 1, OrderSubmitted(order=late)),
        _event(tenant, "dev_b", 2, _printed(late, NOW + timedelta(seconds=7))),
        _event(tenant, "dev_b", 3, _printed(late, NOW + timedelta(seconds=9))),  # a reprint
        _event(tenant, "dev_c", 1, OrderSubmitted(order=cancelled)),
        _event(tenant, "dev_c", 2, OrderCancelled(order_id=cancelled.order_id, command_id="c",
                                                  reason="test", ticket="cancel_slip_queued")),
        ticket_first,  # the same event twice in one batch
    ]
    assert cloud_db.ingest_events(batch, NOW) == ["stored"] * 7 + ["duplicate"]
    assert cloud_db.ingest_events(batch, NOW) == ["duplicate"] * 8

    records = {r.order_id: r for r in cloud_db.orders(tenant)}
    assert records[early.order_id].ticket_printed_at == NOW + timedelta(seconds=5)
    assert records[late.order_id].ticket_printed_at == NOW + timedelta(seconds=7)
    assert records[cancelled.order_id].ticket_printed_at is None
    assert records[cancelled.order_id].order.status == "cancelled"
    assert records[early.order_id].order == early
    seen = {d.device_id: d for d in cloud_db.devices(tenant)}
    assert set(seen) == {"dev_a", "dev_b", "dev_c"}
    assert all(d.online and d.last_seen == NOW for d in seen.values())


def test_cancellations_in_a_batch_see_the_orders_before_them(cloud_db: CloudDb) -> None:
    tenant = new_id("ten")
    replayed, first, replacement = (_order(tenant, "dev_a", n) for n in (1, 2, 3))
    batch = [
        # a cancel ahead of its order (a replay) finds no order, as one at a time did
        _event(tenant, "dev_a", 9, OrderCancelled(order_id=replayed.order_id, command_id="c",
                                                  reason="test", ticket="never_printed")),
        _event(tenant, "dev_a", 1, OrderSubmitted(order=replayed)),
        _event(tenant, "dev_a", 2, OrderSubmitted(order=first)),
        _event(tenant, "dev_a", 3, OrderSuperseded(order_id=first.order_id,
                                                   command_id="c2", replacement=replacement,
                                                   action_id=new_id("act"))),
        _event(tenant, "dev_a", 4, _printed(replacement, NOW + timedelta(seconds=3))),
    ]
    assert cloud_db.ingest_events(batch, NOW) == ["stored"] * 5
    status = {r.order_id: (r.order.status, r.ticket_printed_at) for r in cloud_db.orders(tenant)}
    assert status == {replayed.order_id: ("submitted", None),
                      first.order_id: ("cancelled", None),
                      replacement.order_id: ("submitted", NOW + timedelta(seconds=3))}


def test_a_later_batch_updates_tickets_and_last_seen(cloud_db: CloudDb) -> None:
    tenant = new_id("ten")
    order = _order(tenant, "dev_a", 1)
    assert cloud_db.ingest_events([_event(tenant, "dev_a", 1, OrderSubmitted(order=order))],
                                  NOW) == ["stored"]
    later = NOW + timedelta(minutes=1)
    cloud_db.ingest_events([_event(tenant, "dev_a", 2, _printed(order, later))], later)
    cloud_db.ingest_events([_event(tenant, "dev_a", 3, _printed(order, later + timedelta(1)))],
                           later + timedelta(minutes=1))
    [record] = cloud_db.orders(tenant)
    assert record.ticket_printed_at == later  # the first ticket's time stays
    [device] = cloud_db.devices(tenant)
    assert device.last_seen == later + timedelta(minutes=1)
    assert cloud_db.ingest_events([], NOW) == []


def test_a_large_batch_with_awkward_text_round_trips(cloud_db: CloudDb) -> None:
    tenant = new_id("ten")
    awkward = "Caf\u00e9 \"cr\u00e8me\" \\ 'single' \U0001f355 %s %(x)s :name ::cast"
    orders = [_order(tenant, f"dev_{n % 50}", n, name=awkward) for n in range(1, 1201)]
    events = [_event(tenant, o.device_id, o.number, OrderSubmitted(order=o)) for o in orders]
    assert cloud_db.ingest_events(events, NOW) == ["stored"] * len(events)
    stored = {r.order_id: r.order for r in cloud_db.orders(tenant, limit=2000)}
    assert len(stored) == 1200
    assert all(stored[o.order_id] == o for o in orders)
    assert len(cloud_db.devices(tenant)) == 50
