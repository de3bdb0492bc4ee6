"""A cancelled or superseded order is cancelled on the POS exactly once, never before its
create: the fake Square (a real HTTP server) behind the real worker, on SQLite and
PostgreSQL, through 500s, a timeout after the cancel was applied, a write still retrying,
a cancel on the POS by staff, and an operator's replay.

The worker's clock is frozen and moved by the test; the HTTP and the database are real.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from cloud.db import Database
from cloud.integration.action_store import get_action, read_breaker
from cloud.integration.order_inbox import record_order_events
from cloud.integration.remediation import replay
from cloud.integration.worker import Worker
from sync.contracts.actions import Action
from sync.contracts.errors import Correlation
from sync.contracts.events import EventEnvelope, OrderCancelled, OrderSuperseded
from sync.contracts.order import Order
from tests.cloud.test_integration_pos import (  # noqa: F401 (fixtures)
    POLICY,
    T0,
    Clock,
    actions_of,
    clock_fixture,
    close_open_actions,
    configure_square,
    ctx,
    distinct_orders,
    fault,
    make_order,
    new_tenant,
    settle,
    square_fixture,
    submitted,
    transitions,
    worker_fixture,
)
from tests.peers.fake_square import ACCESS_TOKEN, LOCATION_ID, FakeSquare


def cancelled(order: Order, seq: int = 2) -> EventEnvelope:
    return EventEnvelope(event_id=f"evt_{uuid.uuid4().hex}", tenant_id=order.tenant_id,
                         device_id=order.device_id, seq=seq, occurred_at=T0,
                         correlation=Correlation(order_id=order.order_id),
                         data=OrderCancelled(order_id=order.order_id, command_id="cmd_1",
                                             reason="caller rang back", ticket="cancel_slip_queued"))


def superseded(old: Order, new: Order, seq: int = 2) -> EventEnvelope:
    return EventEnvelope(event_id=f"evt_{uuid.uuid4().hex}", tenant_id=old.tenant_id,
                         device_id=old.device_id, seq=seq, occurred_at=T0,
                         correlation=Correlation(order_id=old.order_id),
                         data=OrderSuperseded(order_id=old.order_id, command_id="cmd_2",
                                              replacement=new, action_id="act_print"))


def pos_orders(square: FakeSquare, reference_id: str) -> list[dict[str, Any]]:
    """Each POS order for `reference_id`: id, state, version, applied updates."""
    answer = httpx.get(f"{square.url}/_fake/orders", params={"reference_id": reference_id})
    return list(answer.json()["orders"])


def action_of(db: Database, tenant_id: str, order_id: str, kind: str) -> Action:
    [action] = [a for a in actions_of(db, tenant_id, order_id) if a.kind == kind]
    return action


def written(database: Database, worker: Worker, clock: Clock, square: FakeSquare,
            tenant: str) -> Order:
    """An order already on the POS (its pos_write succeeded)."""
    order = make_order(tenant)
    record_order_events(database, [submitted(order)], clock.now, POLICY.retry)
    settle(worker, clock)
    assert action_of(database, tenant, order.order_id, "pos_write").state == "succeeded"
    return order


def test_submitted_then_cancelled_cancels_the_pos_order_once(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    tenant = new_tenant()
    configure_square(database, tenant, square.url)
    order = written(database, worker, clock, square, tenant)
    [cancel] = [a for a in record_order_events(database, [cancelled(order)], clock.now,
                                               POLICY.retry) if a.kind == "pos_cancel"]
    assert cancel.key == f"{order.order_id}.pos_cancel.square"
    settle(worker, clock)
    [pos] = pos_orders(square, order.order_id)
    assert pos["state"] == "CANCELED" and pos["updates"] == 1 and pos["version"] == 2
    with database.tenant(tenant) as tx:
        done = get_action(tx, cancel.action_id)
    assert done.state == "succeeded" and done.result is not None
    assert done.result["square_order_id"] == pos["id"]
    assert done.result["cancelled_version"] == 1 and done.result["state"] == "CANCELED"
    assert transitions(database, tenant, cancel.action_id) == ["create", "claim", "succeed"]
    answer = httpx.get(f"{square.url}/v2/orders/{pos['id']}",
                       headers={"Authorization": f"Bearer {ACCESS_TOKEN}"})
    assert answer.json()["order"]["state"] == "CANCELED"


def test_cancel_through_two_500s_cancels_once(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    tenant = new_tenant()
    configure_square(database, tenant, square.url)
    order = written(database, worker, clock, square, tenant)
    fault(square, kind="error500", count=2)
    record_order_events(database, [cancelled(order)], clock.now, POLICY.retry)
    settle(worker, clock)
    cancel = action_of(database, tenant, order.order_id, "pos_cancel")
    assert cancel.state == "succeeded" and cancel.attempts == 3
    assert transitions(database, tenant, cancel.action_id) == [
        "create", "claim", "fail", "claim", "fail", "claim", "succeed"]
    [pos] = pos_orders(square, order.order_id)
    assert pos["state"] == "CANCELED" and pos["updates"] == 1


def test_a_timeout_after_the_pos_cancelled_does_not_cancel_twice(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    tenant = new_tenant()
    configure_square(database, tenant, square.url, timeout_s=0.3)
    order = written(database, worker, clock, square, tenant)
    fault(square, kind="hang_after_create", hang_s=1.0)  # the PUT is applied, then hangs
    record_order_events(database, [cancelled(order)], clock.now, POLICY.retry)
    worker.run_until_idle()
    waiting = action_of(database, tenant, order.order_id, "pos_cancel")
    assert waiting.state == "retry_scheduled" and waiting.last_error is not None
    assert waiting.last_error.code == "pos.timeout"
    assert pos_orders(square, order.order_id)[0]["state"] == "CANCELED"
    replays = square.state.replays
    settle(worker, clock)
    assert action_of(database, tenant, order.order_id, "pos_cancel").state == "succeeded"
    [pos] = pos_orders(square, order.order_id)
    assert pos["updates"] == 1 and pos["version"] == 2
    assert square.state.replays == replays + 1  # the retry got the first answer back


def test_cancel_before_the_write_was_sent_is_a_no_op(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    tenant = new_tenant()
    configure_square(database, tenant, square.url)
    order = make_order(tenant)
    record_order_events(database, [submitted(order), cancelled(order)], clock.now)
    worker.run_until_idle()
    assert action_of(database, tenant, order.order_id, "pos_write").state == "cancelled"
    cancel = action_of(database, tenant, order.order_id, "pos_cancel")
    assert cancel.state == "succeeded" and cancel.result is not None
    assert cancel.result["noop"] is True
    assert "before it was sent" in cancel.result["reason"]
    assert distinct_orders(square, order.order_id) == 0
    assert square.state.requests == 0  # neither a create nor a cancel reached the POS


def test_cancel_waits_for_a_write_that_is_retrying(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    tenant = new_tenant()
    configure_square(database, tenant, square.url)
    order = make_order(tenant)
    fault(square, kind="error500")
    record_order_events(database, [submitted(order)], clock.now, POLICY.retry)
    worker.run_until_idle()
    write = action_of(database, tenant, order.order_id, "pos_write")
    assert write.state == "retry_scheduled" and write.attempts == 1
    record_order_events(database, [cancelled(order)], clock.now, POLICY.retry)
    # The write may already exist on the POS (only a timeout would tell), so it is not
    # closed; the cancel is claimed, finds the write unsettled, and waits.
    assert action_of(database, tenant, order.order_id, "pos_write").state == "retry_scheduled"
    worker.run_until_idle()
    waiting = action_of(database, tenant, order.order_id, "pos_cancel")
    assert waiting.state == "retry_scheduled" and waiting.last_error is not None
    assert waiting.last_error.code == "pos.cancel_waits_for_write"
    with database.tenant(tenant) as tx:
        breaker = read_breaker(tx, "square")
    assert breaker is not None and breaker.failures == 1  # waiting is no news of the POS
    assert square.state.requests == 1  # only the failed create so far
    settle(worker, clock)
    write = action_of(database, tenant, order.order_id, "pos_write")
    cancel = action_of(database, tenant, order.order_id, "pos_cancel")
    assert write.state == "succeeded" and cancel.state == "succeeded"
    assert cancel.updated_at >= write.updated_at
    [pos] = pos_orders(square, order.order_id)
    assert pos["state"] == "CANCELED" and pos["updates"] == 1


def test_superseded_cancels_the_old_order_once_and_creates_the_replacement_once(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    tenant = new_tenant()
    configure_square(database, tenant, square.url)
    old = written(database, worker, clock, square, tenant)
    new = make_order(tenant).model_copy(update={"number": old.number})
    record_order_events(database, [superseded(old, new)], clock.now, POLICY.retry)
    settle(worker, clock)
    [old_pos] = pos_orders(square, old.order_id)
    [new_pos] = pos_orders(square, new.order_id)
    assert old_pos["state"] == "CANCELED" and old_pos["updates"] == 1
    assert new_pos["state"] == "OPEN" and new_pos["updates"] == 0
    cancel = action_of(database, tenant, old.order_id, "pos_cancel")
    assert cancel.state == "succeeded" and cancel.payload["why"] == "superseded"
    assert replay(database, tenant, new.order_id, ctx(clock.now)) == []
    assert replay(database, tenant, old.order_id, ctx(clock.now)) == []


def test_replay_after_a_dead_lettered_cancel_does_not_cancel_twice(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    """Every cancel attempt is applied or replayed by the POS but its answer is lost, so
    the action dead-letters; the operator's replay sends it once more with the same key."""
    tenant = new_tenant()
    configure_square(database, tenant, square.url, timeout_s=0.3)
    order = written(database, worker, clock, square, tenant)
    fault(square, kind="hang_after_create", hang_s=0.6, count=POLICY.retry.max_attempts)
    record_order_events(database, [cancelled(order)], clock.now, POLICY.retry)
    settle(worker, clock)
    dead = action_of(database, tenant, order.order_id, "pos_cancel")
    assert dead.state == "dead_lettered" and dead.attempts == POLICY.retry.max_attempts
    [revived] = replay(database, tenant, order.order_id, ctx(clock.now, "ops"))
    assert revived.action_id == dead.action_id and revived.state == "pending"
    clock.advance(POLICY.breaker.cooldown_s)  # the lost answers opened the breaker
    settle(worker, clock)
    assert action_of(database, tenant, order.order_id, "pos_cancel").state == "succeeded"
    assert replay(database, tenant, order.order_id, ctx(clock.now, "ops")) == []
    worker.run_until_idle()
    [pos] = pos_orders(square, order.order_id)
    assert pos["state"] == "CANCELED" and pos["updates"] == 1 and pos["version"] == 2


def test_an_order_staff_already_cancelled_on_the_pos_is_left_as_is(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    tenant = new_tenant()
    configure_square(database, tenant, square.url)
    order = written(database, worker, clock, square, tenant)
    [pos] = pos_orders(square, order.order_id)
    by_staff = httpx.put(f"{square.url}/v2/orders/{pos['id']}",
                         headers={"Authorization": f"Bearer {ACCESS_TOKEN}"},
                         json={"idempotency_key": "staff-1", "order": {
                             "location_id": LOCATION_ID, "version": 1, "state": "CANCELED"}})
    assert by_staff.status_code == 200
    record_order_events(database, [cancelled(order)], clock.now, POLICY.retry)
    settle(worker, clock)
    cancel = action_of(database, tenant, order.order_id, "pos_cancel")
    assert cancel.state == "succeeded" and cancel.result is not None
    assert cancel.result["already_cancelled"] is True
    [pos] = pos_orders(square, order.order_id)
    assert pos["state"] == "CANCELED" and pos["updates"] == 1
