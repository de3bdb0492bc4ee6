"""The action lifecycle and the circuit breaker as pure objects: every transition from
every state, backoff with full jitter, and outages played out on a simulated clock."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest
from pydantic import ValidationError

from cloud.integration.breaker import Breaker, BreakerPolicy
from cloud.integration.lifecycle import (
    LEGAL,
    IllegalTransition,
    RetryPolicy,
    apply,
    new_action,
    replay_state,
)
from sync.contracts.actions import Action, ActionEvent, ActionState, Transition
from sync.contracts.errors import ErrorEnvelope

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(base_s=2.0, cap_s=300.0, max_attempts=4, patience_s=0)
ERR = ErrorEnvelope(code="pos.unavailable", category="unavailable", message="500",
                    retryable=True)
EXPECTED: dict[tuple[Transition, ActionState], ActionState] = {
    ("claim", "pending"): "in_flight", ("claim", "retry_scheduled"): "in_flight",
    ("succeed", "in_flight"): "succeeded", ("fail", "in_flight"): "retry_scheduled",
    ("fail_permanent", "in_flight"): "dead_lettered",
    ("lease_expired", "in_flight"): "retry_scheduled",
    **{("cancel", s): "cancelled" for s in ("pending", "retry_scheduled", "dead_lettered")},
    **{("supersede", s): "superseded" for s in ("pending", "retry_scheduled", "dead_lettered")},
    ("retry_now", "retry_scheduled"): "pending", ("retry_now", "dead_lettered"): "pending",
    **{("skip", s): "cancelled" for s in ("pending", "retry_scheduled", "dead_lettered")},
    **{("resolve", s): "succeeded" for s in ("pending", "retry_scheduled", "dead_lettered")},
    ("replay", "dead_lettered"): "pending", ("replay", "cancelled"): "pending",
}
STATES: tuple[ActionState, ...] = get_args(ActionState)
TRANSITIONS: tuple[Transition, ...] = tuple(t for t in get_args(Transition) if t != "create")


def fresh() -> Action:
    action, _ = new_action(tenant_id="ten_a", order_id="ord_1", kind="pos_write",
                           integration_id="square", key="ord_1.pos_write.square",
                           payload={"order": {}}, now=T0, policy=POLICY)
    return action


def in_state(state: ActionState) -> Action:
    return fresh().model_copy(update={"state": state, "attempts": 1, "version": 3})


def test_the_legal_table_is_exactly_the_expected_one() -> None:
    legal = {(t, s) for t, states in LEGAL.items() for s in states}
    assert legal == set(EXPECTED)


@pytest.mark.parametrize("transition", TRANSITIONS)
@pytest.mark.parametrize("state", STATES)
def test_every_transition_from_every_state(transition: Transition, state: ActionState) -> None:
    before = in_state(state)
    kwargs = {"policy": POLICY, "rng": random.Random(1), "error": ERR}
    if (transition, state) not in EXPECTED:
        with pytest.raises(IllegalTransition) as info:
            apply(before, transition, T0, actor="test", **kwargs)
        assert info.value.state == state and info.value.code == "action.illegal_transition"
        return
    after, event = apply(before, transition, T0 + timedelta(seconds=5), actor="test", **kwargs)
    assert after.state == EXPECTED[(transition, state)]
    assert (event.from_state, event.to_state, event.transition) == (state, after.state,
                                                                     transition)
    assert event.seq == after.version == before.version + 1
    assert before.state == state  # the input is never changed
    with pytest.raises(ValidationError):  # events and actions are immutable
        event.to_state = "pending"  # type: ignore[misc]


def test_claim_before_due_is_refused() -> None:
    action = fresh().model_copy(update={"next_attempt_at": T0 + timedelta(seconds=10)})
    with pytest.raises(IllegalTransition, match="not due"):
        apply(action, "claim", T0, actor="w")
    claimed, event = apply(action, "claim", T0 + timedelta(seconds=10), actor="w")
    assert claimed.attempts == 1 and event.attempt == 1


def test_failures_back_off_with_full_jitter_then_dead_letter() -> None:
    rng = random.Random(7)
    action, now = fresh(), T0
    waits = []
    for attempt in range(1, POLICY.max_attempts + 1):
        action, _ = apply(action, "claim", action.next_attempt_at, actor="w")
        now = action.updated_at
        action, event = apply(action, "fail", now, actor="w", policy=POLICY, rng=rng, error=ERR)
        if attempt < POLICY.max_attempts:
            wait = (action.next_attempt_at - now).total_seconds()
            assert 0 <= wait <= min(POLICY.cap_s, POLICY.base_s * 2 ** (attempt - 1))
            assert event.next_attempt_at == action.next_attempt_at
            waits.append(wait)
    assert action.state == "dead_lettered" and action.last_error == ERR
    assert len(set(waits)) == len(waits)  # jittered, not a fixed schedule


def test_retry_after_is_a_floor() -> None:
    rng = random.Random(3)
    limited = ERR.model_copy(update={"code": "pos.rate_limited", "retry_after_s": 42.0})
    action, _ = apply(fresh(), "claim", T0, actor="w")
    action, _ = apply(action, "fail", T0, actor="w", policy=POLICY, rng=rng, error=limited)
    assert action.next_attempt_at - T0 >= timedelta(seconds=42)


def test_full_jitter_stays_under_the_cap() -> None:
    policy, rng = RetryPolicy(base_s=1, cap_s=10, max_attempts=50), random.Random(0)
    delays = [policy.delay(n, rng) for n in range(1, 40)]
    assert max(delays) <= 10 and min(delays) >= 0


def test_failure_needs_a_policy_and_rng() -> None:
    action, _ = apply(fresh(), "claim", T0, actor="w")
    with pytest.raises(ValueError):
        apply(action, "fail", T0, actor="w", error=ERR)


def test_operator_retry_gives_a_dead_letter_a_fresh_budget() -> None:
    dead = in_state("dead_lettered").model_copy(update={"attempts": 4})
    revived, event = apply(dead, "retry_now", T0, actor="token:ops", policy=POLICY)
    assert revived.state == "pending" and revived.next_attempt_at == T0
    assert revived.max_attempts == 4 + POLICY.max_attempts and event.actor == "token:ops"


def test_history_rebuilds_the_state() -> None:
    rng = random.Random(5)
    action, created = new_action(tenant_id="t", order_id="o", kind="webhook",
                                 integration_id="hook", key="k", payload={}, now=T0,
                                 policy=POLICY)
    events: list[ActionEvent] = [created]
    for transition in ("claim", "fail", "claim", "succeed"):
        action, event = apply(action, transition, action.next_attempt_at, actor="w",  # type: ignore[arg-type]
                              policy=POLICY, rng=rng, error=ERR)
        events.append(event)
    assert replay_state(events) == action.state == "succeeded"
    with pytest.raises(ValueError):
        replay_state(events[1:])
    with pytest.raises(ValueError):
        replay_state([events[0], events[2]])


# -- the breaker ------------------------------------------------------------------------

BP = BreakerPolicy(failure_threshold=3, cooldown_s=30)


def test_breaker_opens_after_consecutive_failures_and_probes_after_cooldown() -> None:
    b = Breaker(tenant_id="t", integration_id="square")
    assert b.admits(T0, BP) is None
    b = b.on_failure(T0, BP).on_failure(T0, BP)
    assert b.mode == "closed" and b.failures == 2
    b = b.on_failure(T0, BP)
    assert b.mode == "open" and b.admits(T0 + timedelta(seconds=29), BP) == 0
    assert b.admits(T0 + timedelta(seconds=30), BP) == 1
    probing = b.on_claim(T0 + timedelta(seconds=30), BP)
    assert probing.mode == "half_open" and probing.admits(T0 + timedelta(hours=1), BP) == 0
    reopened = probing.on_failure(T0 + timedelta(seconds=31), BP)
    assert reopened.mode == "open" and reopened.opened_at == T0 + timedelta(seconds=31)
    closed = probing.on_success()
    assert closed.mode == "closed" and closed.failures == 0 and closed.admits(T0, BP) is None


def test_a_success_resets_the_failure_count() -> None:
    b = Breaker(tenant_id="t", integration_id="square").on_failure(T0, BP).on_failure(T0, BP)
    b = b.on_success().on_failure(T0, BP).on_failure(T0, BP)
    assert b.mode == "closed"


def test_an_hour_long_outage_costs_few_attempts() -> None:
    """Simulated: the POS is down for an hour; the breaker holds the order back, so it is
    delivered once the POS returns instead of being dead-lettered."""
    rng, policy = random.Random(11), RetryPolicy(base_s=2, cap_s=300, max_attempts=12)
    action, _ = new_action(tenant_id="t", order_id="o", kind="pos_write",
                           integration_id="square", key="k", payload={}, now=T0, policy=policy)
    breaker = Breaker(tenant_id="t", integration_id="square")
    now, up_at = T0, T0 + timedelta(hours=1)
    while action.state != "succeeded":
        assert action.state != "dead_lettered"
        due = action.next_attempt_at
        opens_at = (breaker.opened_at + timedelta(seconds=BP.cooldown_s)
                    if breaker.mode == "open" and breaker.opened_at else due)
        now = max(now, due, opens_at)
        if breaker.admits(now, BP) == 0:
            now += timedelta(seconds=1)
            continue
        breaker = breaker.on_claim(now, BP)
        action, _ = apply(action, "claim", now, actor="w")
        if now >= up_at:
            action, _ = apply(action, "succeed", now, actor="w", result={"id": "sq"})
            breaker = breaker.on_success()
        else:
            action, _ = apply(action, "fail", now, actor="w", policy=policy, rng=rng, error=ERR)
            breaker = breaker.on_failure(now, BP)
    assert now >= up_at and action.attempts > policy.max_attempts  # patience, not attempts


def test_out_of_attempts_but_within_patience_keeps_retrying() -> None:
    patient = RetryPolicy(base_s=1, cap_s=5, max_attempts=1, patience_s=60)
    action, _ = new_action(tenant_id="t", order_id="o", kind="pos_write",
                           integration_id="square", key="k", payload={}, now=T0, policy=patient)
    action, _ = apply(action, "claim", T0, actor="w")
    action, _ = apply(action, "fail", T0 + timedelta(seconds=59), actor="w", policy=patient,
                      rng=random.Random(1), error=ERR)
    assert action.state == "retry_scheduled"
    action, _ = apply(action, "claim", action.next_attempt_at, actor="w")
    action, _ = apply(action, "fail", T0 + timedelta(seconds=61), actor="w", policy=patient,
                      rng=random.Random(1), error=ERR)
    assert action.state == "dead_lettered"
