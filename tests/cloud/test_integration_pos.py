"""POS write-back to a fake Square (a real HTTP server) through the real worker, on SQLite
and PostgreSQL: exactly one Square order per order through 500s, an outage, 429s,
timeouts after the POS already created the order, an open breaker, and dead letters.

The worker's clock is frozen and moved by the test, so backoff and breaker cool-downs
are exercised without sleeping; the HTTP and the database are real.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cloud.control.audit import ChangeContext
from cloud.db import Database
from cloud.integration.action_store import action_events, get_action, list_actions, read_breaker
from cloud.integration.breaker import BreakerPolicy
from cloud.integration.claims import ClaimPolicy, claim_lane, due_lanes, finish
from cloud.integration.delivery import Outcome
from cloud.integration.lifecycle import IllegalTransition, RetryPolicy
from cloud.integration.order_inbox import record_order_events
from cloud.integration.pos_square import SquareConfig
from cloud.integration.remediation import operate, put_integration, replay
from cloud.integration.worker import Worker
from sync.contracts.actions import Action
from sync.contracts.errors import Correlation
from sync.contracts.events import EventEnvelope, OrderCancelled, OrderSubmitted, OrderSuperseded
from sync.contracts.order import Order, OrderLine
from tests.cloud.secret_keys import TEST_SECRETS
from tests.peers.fake_square import ACCESS_TOKEN, LOCATION_ID, FakeSquare

T0 = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)


class Clock:
    """The worker's time, moved by the test."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def new_tenant() -> str:
    return f"ten_{uuid.uuid4().hex[:12]}"


def make_order(tenant_id: str, n: int = 1) -> Order:
    order_id = f"ord_{uuid.uuid4().hex[:20]}"
    return Order(order_id=order_id, tenant_id=tenant_id, device_id="dev_1",
                 call_id=f"call_{n}", number=n, currency="USD", total_cents=2598,
                 blueprint_hash="b" * 8, created_at=T0, lines=[
                     OrderLine(line_id="l1", item_id="pizza_pep", name="Pepperoni pizza",
                               quantity=2, size="large", unit_price_cents=1299)])


def submitted(order: Order, seq: int = 1) -> EventEnvelope:
    return EventEnvelope(event_id=f"evt_{uuid.uuid4().hex}", tenant_id=order.tenant_id,
                         device_id=order.device_id, seq=seq, occurred_at=T0,
                         correlation=Correlation(order_id=order.order_id),
                         data=OrderSubmitted(order=order))


def ctx(now: datetime = T0, actor: str = "test") -> ChangeContext:
    return ChangeContext(actor=actor, request_id=None, now=now)


def configure_square(db: Database, tenant_id: str, url: str, *, timeout_s: float = 2.0,
                     location_id: str = LOCATION_ID, integration_id: str = "square") -> None:
    put_integration(db, tenant_id, integration_id, SquareConfig(
        base_url=url, access_token=ACCESS_TOKEN, location_id=location_id,
        timeout_s=timeout_s), True, ctx(), TEST_SECRETS)


def fault(square: FakeSquare, **spec: Any) -> None:
    httpx.post(f"{square.url}/_fake/faults", json=spec).raise_for_status()


def distinct_orders(square: FakeSquare, reference_id: str) -> int:
    answer = httpx.get(f"{square.url}/_fake/orders", params={"reference_id": reference_id})
    return int(answer.json()["distinct_orders"])


def actions_of(db: Database, tenant_id: str, order_id: str | None = None) -> list[Action]:
    with db.tenant(tenant_id) as tx:
        return list_actions(tx, order_id=order_id)


def transitions(db: Database, tenant_id: str, action_id: str) -> list[str]:
    with db.tenant(tenant_id) as tx:
        return [e.transition for e in action_events(tx, action_id)]


def settle(worker: Worker, clock: Clock, step_s: float = 5.0, rounds: int = 40) -> None:
    """Run the worker, moving the clock, until nothing is waiting for a retry."""
    for _ in range(rounds):
        worker.run_until_idle()
        with worker.db.fleet() as tx:
            row = tx.fetch_one("SELECT COUNT(*) AS n FROM integration_actions WHERE state IN "
                               "('pending', 'retry_scheduled', 'in_flight')")
        if row is None or row["n"] == 0:
            return
        clock.advance(step_s)
    raise AssertionError("actions still open after settling")


def close_open_actions(db: Database) -> None:
    """Test teardown: the PostgreSQL database is shared by the session, so a test's
    unfinished actions must not be picked up by the next test's worker."""
    with db.fleet() as tx:
        tx.execute("UPDATE integration_actions SET state = 'cancelled' WHERE state IN "
                   "('pending', 'retry_scheduled', 'in_flight', 'dead_lettered')")


POLICY = ClaimPolicy(lane_cap=2, lease_s=30,
                     retry=RetryPolicy(base_s=1, cap_s=4, max_attempts=3, patience_s=0),
                     breaker=BreakerPolicy(failure_threshold=3, cooldown_s=10))


@pytest.fixture(name="square")
def square_fixture() -> Iterator[FakeSquare]:
    with FakeSquare() as fake:
        yield fake


@pytest.fixture(name="clock")
def clock_fixture() -> Clock:
    return Clock()


@pytest.fixture(name="worker")
def worker_fixture(database: Database, clock: Clock) -> Iterator[Worker]:
    close_open_actions(database)
    w = Worker(database, "w1", POLICY, parallel=4, clock=clock, rng=random.Random(1),
               secrets=TEST_SECRETS)
    yield w
    w.close()
    close_open_actions(database)


def test_two_500s_then_ok_make_exactly_one_square_order(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    tenant = new_tenant()
    configure_square(database, tenant, square.url)
    order = make_order(tenant)
    fault(square, kind="error500", count=2)
    [action] = record_order_events(database, [submitted(order)], clock.now, POLICY.retry)
    settle(worker, clock)
    with database.tenant(tenant) as tx:
        done = get_action(tx, action.action_id)
    assert done.state == "succeeded" and done.attempts == 3
    assert done.result and done.result["state"] == "OPEN"
    assert distinct_orders(square, order.order_id) == 1
    assert transitions(database, tenant, action.action_id) == [
        "create", "claim", "fail", "claim", "fail", "claim", "succeed"]


def test_the_same_event_twice_plans_one_action(database: Database, square: FakeSquare,
                                               clock: Clock, worker: Worker) -> None:
    tenant = new_tenant()
    configure_square(database, tenant, square.url)
    event = submitted(make_order(tenant))
    assert len(record_order_events(database, [event], clock.now)) == 1
    assert record_order_events(database, [event, event], clock.now) == []
    assert len(actions_of(database, tenant)) == 1


def test_no_integration_no_action(database: Database, clock: Clock) -> None:
    tenant = new_tenant()
    assert record_order_events(database, [submitted(make_order(tenant))], clock.now) == []


def test_pos_down_for_an_hour_then_back_delivers_once(
        database: Database, clock: Clock, square: FakeSquare, worker: Worker) -> None:
    """Production retry and breaker settings; the clock runs an hour in 30 s steps."""
    defaults = ClaimPolicy()
    w = Worker(database, "w1", defaults, parallel=4, clock=clock, rng=random.Random(2),
               secrets=TEST_SECRETS)
    tenant = new_tenant()
    configure_square(database, tenant, square.url)
    orders = [make_order(tenant, n) for n in range(1, 4)]
    square.stop()  # connection refused from now on
    try:
        actions = record_order_events(database, [submitted(o) for o in orders], clock.now,
                                      defaults.retry)
        modes = set()
        for _ in range(120):
            w.run_until_idle()
            clock.advance(30)
            with database.tenant(tenant) as tx:
                breaker = read_breaker(tx, "square")
                assert breaker is not None
                modes.add(breaker.mode)
                assert all(get_action(tx, a.action_id).state != "dead_lettered"
                           for a in actions)
        assert "open" in modes
        square.start()
        settle(w, clock, step_s=30)
    finally:
        w.close()
    with database.tenant(tenant) as tx:
        done = [get_action(tx, a.action_id) for a in actions]
        assert read_breaker(tx, "square").mode == "closed"  # type: ignore[union-attr]
    assert {a.state for a in done} == {"succeeded"}
    assert all(distinct_orders(square, o.order_id) == 1 for o in orders)
    # The breaker held the orders back: a few probes, not a retry storm, in the hour.
    print(f"\nattempts over a one-hour outage: {[a.attempts for a in done]}")


def test_429_retry_after_is_honoured(database: Database, worker: Worker, clock: Clock,
                                     square: FakeSquare) -> None:
    tenant = new_tenant()
    configure_square(database, tenant, square.url)
    order = make_order(tenant)
    fault(square, kind="rate_limit", retry_after_s=30)
    [action] = record_order_events(database, [submitted(order)], clock.now)
    worker.run_until_idle()
    with database.tenant(tenant) as tx:
        waiting = get_action(tx, action.action_id)
    assert waiting.state == "retry_scheduled"
    assert waiting.last_error is not None and waiting.last_error.code == "pos.rate_limited"
    assert waiting.next_attempt_at >= T0 + timedelta(seconds=30)
    clock.advance(29)
    worker.run_until_idle()
    with database.tenant(tenant) as tx:
        assert get_action(tx, action.action_id).attempts == 1  # not tried before Retry-After
    clock.advance(2)
    worker.run_until_idle()
    with database.tenant(tenant) as tx:
        assert get_action(tx, action.action_id).state == "succeeded"
    assert distinct_orders(square, order.order_id) == 1


def test_timeout_after_square_created_the_order_makes_no_duplicate(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    tenant = new_tenant()
    configure_square(database, tenant, square.url, timeout_s=0.3)
    order = make_order(tenant)
    fault(square, kind="hang_after_create", hang_s=1.0)
    [action] = record_order_events(database, [submitted(order)], clock.now, POLICY.retry)
    worker.run_until_idle()
    with database.tenant(tenant) as tx:
        first = get_action(tx, action.action_id)
    assert first.state == "retry_scheduled" and first.last_error is not None
    assert first.last_error.code == "pos.timeout"
    assert distinct_orders(square, order.order_id) == 1  # Square did create it
    settle(worker, clock)
    with database.tenant(tenant) as tx:
        done = get_action(tx, action.action_id)
    assert done.state == "succeeded"
    created = next(iter(o for o in square.state.orders.values()
                        if o["reference_id"] == order.order_id))
    assert done.result is not None and done.result["square_order_id"] == created["id"]
    assert distinct_orders(square, order.order_id) == 1
    assert square.state.replays == 1  # the retry got the first order back


def test_open_breaker_holds_one_tenant_while_another_flows(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    dead, healthy = new_tenant(), new_tenant()
    with FakeSquare() as dead_pos:
        configure_square(database, dead, dead_pos.url, timeout_s=0.2)
        configure_square(database, healthy, square.url)
        fault(dead_pos, kind="hang", count=100, hang_s=0.5)
        dead_orders = [make_order(dead, n) for n in range(1, 7)]
        good_orders = [make_order(healthy, n) for n in range(1, 7)]
        record_order_events(database, [submitted(o) for o in dead_orders], clock.now)
        record_order_events(database, [submitted(o) for o in good_orders], clock.now)
        for _ in range(10):
            worker.run_until_idle()
            with database.tenant(dead) as tx:
                breaker = read_breaker(tx, "square")
            if breaker is not None and breaker.mode == "open":
                break
            clock.advance(4)
        assert breaker is not None and breaker.mode == "open"
        requests_when_open = dead_pos.state.requests
        clock.advance(POLICY.breaker.cooldown_s - 1)
        worker.run_until_idle()  # within the cool-down: nothing goes to the dead POS
        assert dead_pos.state.requests == requests_when_open
        clock.advance(1)
        worker.run_until_idle()  # cooled down: exactly one probe, which fails: open again
        assert dead_pos.state.requests == requests_when_open + 1
        with database.tenant(dead) as tx:
            assert read_breaker(tx, "square").mode == "open"  # type: ignore[union-attr]
        assert {a.state for a in actions_of(database, healthy)} == {"succeeded"}
        assert all(distinct_orders(square, o.order_id) == 1 for o in good_orders)
        assert not any(a.state in ("succeeded", "dead_lettered")
                       for a in actions_of(database, dead))


def test_dead_letter_then_operator_retry_now_succeeds(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    tenant = new_tenant()
    configure_square(database, tenant, square.url)
    order = make_order(tenant)
    fault(square, kind="error500", count=3)
    [action] = record_order_events(database, [submitted(order)], clock.now, POLICY.retry)
    settle(worker, clock)
    with database.tenant(tenant) as tx:
        dead = get_action(tx, action.action_id)
    assert dead.state == "dead_lettered" and dead.attempts == 3
    assert distinct_orders(square, order.order_id) == 0
    revived = operate(database, tenant, action.action_id, "retry_now", ctx(clock.now, "ops"),
                      reason="POS fixed")
    assert revived.state == "pending"
    clock.advance(POLICY.breaker.cooldown_s)  # three 500s opened the breaker; it probes next
    worker.run_until_idle()
    with database.tenant(tenant) as tx:
        done = get_action(tx, action.action_id)
        audit = tx.fetch_all("SELECT action FROM audit_log WHERE tenant_id = :tenant_id")
    assert done.state == "succeeded" and distinct_orders(square, order.order_id) == 1
    assert {"action": "integration.action.retry_now"} in audit
    with pytest.raises(IllegalTransition):
        operate(database, tenant, action.action_id, "skip", ctx(clock.now))


def test_a_refused_order_is_dead_lettered_at_once(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    tenant = new_tenant()
    configure_square(database, tenant, square.url, location_id="L_UNKNOWN")
    [action] = record_order_events(database, [submitted(make_order(tenant))], clock.now)
    worker.run_until_idle()
    with database.tenant(tenant) as tx:
        dead = get_action(tx, action.action_id)
        breaker = read_breaker(tx, "square")
    assert dead.state == "dead_lettered" and dead.attempts == 1
    assert dead.last_error is not None and dead.last_error.code == "pos.rejected"
    assert "NOT_FOUND" in dead.last_error.message
    assert breaker is not None and breaker.mode == "closed"  # the POS is up; it said no


def test_cancelled_order_never_reaches_the_pos(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    tenant = new_tenant()
    configure_square(database, tenant, square.url)
    order = make_order(tenant)
    cancel = EventEnvelope(event_id=f"evt_{uuid.uuid4().hex}", tenant_id=tenant,
                           device_id=order.device_id, seq=2, occurred_at=T0,
                           correlation=Correlation(order_id=order.order_id),
                           data=OrderCancelled(order_id=order.order_id, command_id="cmd_1",
                                               reason="caller rang back",
                                               ticket="never_printed"))
    record_order_events(database, [submitted(order), cancel], clock.now)
    worker.run_until_idle()
    by_kind = {a.kind: a for a in actions_of(database, tenant)}
    assert by_kind["pos_write"].state == "cancelled"
    assert by_kind["pos_cancel"].state == "succeeded"  # nothing on the POS to cancel
    assert distinct_orders(square, order.order_id) == 0


def test_replay_recreates_missing_actions_and_never_duplicates(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    tenant = new_tenant()
    order = make_order(tenant)
    record_order_events(database, [submitted(order)], clock.now)  # no POS configured yet
    assert actions_of(database, tenant) == []
    configure_square(database, tenant, square.url)
    [created] = replay(database, tenant, order.order_id, ctx(clock.now, "ops"))
    worker.run_until_idle()
    assert replay(database, tenant, order.order_id, ctx(clock.now, "ops")) == []
    worker.run_until_idle()
    [action] = actions_of(database, tenant)
    assert action.action_id == created.action_id and action.state == "succeeded"
    assert distinct_orders(square, order.order_id) == 1


def test_a_vanished_workers_claim_lapses_and_its_late_outcome_is_dropped(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    tenant = new_tenant()
    configure_square(database, tenant, square.url)
    order = make_order(tenant)
    record_order_events(database, [submitted(order)], clock.now)
    [lane] = [lane for lane in due_lanes(database, clock.now) if lane.tenant_id == tenant]
    [ghost] = claim_lane(database, lane, clock.now, 1, "ghost", POLICY, random.Random(1))
    worker.run_until_idle()
    assert distinct_orders(square, order.order_id) == 0  # held by the ghost's lease
    clock.advance(POLICY.lease_s + 1)
    settle(worker, clock)
    late = finish(database, ghost, Outcome.failed("retryable", "pos.timeout", "timeout", "late"),
                  clock.now, "ghost", POLICY, random.Random(1))
    assert late is None
    [action] = actions_of(database, tenant)
    assert action.state == "succeeded" and distinct_orders(square, order.order_id) == 1
    assert transitions(database, tenant, action.action_id) == [
        "create", "claim", "lease_expired", "claim", "succeed"]


def test_a_superseded_order_sends_only_the_replacement(
        database: Database, worker: Worker, clock: Clock, square: FakeSquare) -> None:
    tenant = new_tenant()
    configure_square(database, tenant, square.url)
    old = make_order(tenant)
    new = make_order(tenant).model_copy(update={"number": old.number})
    supersede = EventEnvelope(
        event_id=f"evt_{uuid.uuid4().hex}", tenant_id=tenant, device_id=old.device_id, seq=2,
        occurred_at=T0, correlation=Correlation(order_id=old.order_id),
        data=OrderSuperseded(order_id=old.order_id, command_id="cmd_2", replacement=new,
                             action_id="act_print"))
    record_order_events(database, [submitted(old), supersede], clock.now)
    worker.run_until_idle()
    states = {(a.order_id, a.kind): a.state for a in actions_of(database, tenant)}
    assert states == {(old.order_id, "pos_write"): "superseded",
                      (old.order_id, "pos_cancel"): "succeeded",  # a no-op: never sent
                      (new.order_id, "pos_write"): "succeeded"}
    assert distinct_orders(square, old.order_id) == 0
    assert distinct_orders(square, new.order_id) == 1
    assert replay(database, tenant, new.order_id, ctx(clock.now)) == []
