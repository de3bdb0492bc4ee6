"""The action lifecycle as a pure state machine: time and randomness are passed in.

pending -> in_flight -> succeeded | retry_scheduled (-> in_flight again) | dead_lettered;
pending, retry_scheduled and dead_lettered can also become cancelled or superseded (the
order changed) and operators can retry, skip, resolve or replay. `apply` never reads a
clock or does I/O, so a one-hour POS outage is a unit test that runs in milliseconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sync.contracts.actions import Action, ActionEvent, ActionKind, ActionState, Transition
from sync.contracts.errors import ErrorEnvelope
from sync.ids import new_id

_OPEN: frozenset[ActionState] = frozenset({"pending", "retry_scheduled", "dead_lettered"})

LEGAL: dict[Transition, frozenset[ActionState]] = {
    "claim": frozenset({"pending", "retry_scheduled"}),
    "succeed": frozenset({"in_flight"}),
    "fail": frozenset({"in_flight"}),
    "fail_permanent": frozenset({"in_flight"}),
    "lease_expired": frozenset({"in_flight"}),
    "cancel": _OPEN,
    "supersede": _OPEN,
    "retry_now": frozenset({"retry_scheduled", "dead_lettered"}),
    "skip": _OPEN,
    "resolve": _OPEN,
    "replay": frozenset({"dead_lettered", "cancelled"}),
}
"""Which states each transition may leave; anything else is an IllegalTransition."""


class IllegalTransition(Exception):
    """A transition the action's current state does not allow (nothing was changed)."""

    code = "action.illegal_transition"

    def __init__(self, action: Action, transition: str, why: str = "") -> None:
        self.action_id = action.action_id
        self.state = action.state
        self.transition = transition
        super().__init__(f"{transition} is not allowed from {action.state} "
                         f"(action {action.action_id}){': ' + why if why else ''}")


class Rng(Protocol):
    """The randomness jitter needs; `random.Random(seed)` in tests."""

    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits U(0, min(cap, base * 2**(n-1))).

    Full jitter spreads a crowd of actions that failed together (the POS came back) so
    they do not return as one burst. A peer's Retry-After is a floor, never shortened.
    A retryable failure dead-letters the action only once it has used `max_attempts` AND
    is `patience_s` old, so a POS that is down for an hour delays orders, never loses them.
    """

    base_s: float = 2.0
    cap_s: float = 300.0
    max_attempts: int = 12
    patience_s: float = 3 * 3600.0

    def delay(self, attempts: int, rng: Rng, retry_after_s: float | None = None) -> float:
        """Seconds to wait before the next attempt after `attempts` failed ones (>= 1)."""
        ceiling = min(self.cap_s, self.base_s * 2 ** max(0, attempts - 1))
        jittered = rng.uniform(0.0, ceiling)
        return max(jittered, retry_after_s or 0.0)


def new_action(*, tenant_id: str, order_id: str, kind: ActionKind, integration_id: str, key: str,
               payload: dict[str, Any], now: datetime, policy: RetryPolicy,
               actor: str = "planner", action_id: str | None = None,
               ) -> tuple[Action, ActionEvent]:
    """A fresh pending action, due now, and its `create` event."""
    action = Action(
        action_id=action_id or new_id("act"), tenant_id=tenant_id, order_id=order_id,
        kind=kind, integration_id=integration_id, key=key, state="pending", attempts=0,
        max_attempts=policy.max_attempts, next_attempt_at=now, payload=payload,
        version=1, created_at=now, updated_at=now)
    return action, _event(action, None, "create", now, actor)


def _event(after: Action, before: ActionState | None, transition: Transition, at: datetime,
           actor: str, *, error: ErrorEnvelope | None = None,
           result: dict[str, Any] | None = None, reason: str | None = None) -> ActionEvent:
    due = after.next_attempt_at if after.state in ("pending", "retry_scheduled") else None
    return ActionEvent(
        event_id=new_id("evt"), action_id=after.action_id, tenant_id=after.tenant_id,
        order_id=after.order_id, seq=after.version, transition=transition, from_state=before,
        to_state=after.state, at=at, attempt=after.attempts, next_attempt_at=due,
        error=error, result=result, actor=actor, reason=reason)


def apply(action: Action, transition: Transition, now: datetime, *, actor: str,
          policy: RetryPolicy | None = None, rng: Rng | None = None,
          error: ErrorEnvelope | None = None, result: dict[str, Any] | None = None,
          reason: str | None = None) -> tuple[Action, ActionEvent]:
    """The action after `transition` at `now`, and the event that records it.

    Raises IllegalTransition when the current state does not allow it, or when a claim
    comes before the action is due. `fail` and `lease_expired` need `policy` and `rng`.
    """
    if transition == "create" or action.state not in LEGAL[transition]:
        raise IllegalTransition(action, transition)
    changes: dict[str, Any] = {}
    if transition == "claim":
        if action.next_attempt_at > now:
            raise IllegalTransition(action, transition, f"not due until {action.next_attempt_at}")
        changes = {"state": "in_flight", "attempts": action.attempts + 1}
    elif transition in ("succeed", "resolve"):
        changes = {"state": "succeeded", "result": result, "last_error": None}
    elif transition in ("fail", "lease_expired"):
        changes = _after_failure(action, now, policy, rng, error)
    elif transition == "fail_permanent":
        changes = {"state": "dead_lettered", "last_error": error}
    elif transition in ("cancel", "skip"):
        changes = {"state": "cancelled"}
    elif transition == "supersede":
        changes = {"state": "superseded"}
    elif transition in ("retry_now", "replay"):
        # An operator's retry gives a dead letter a fresh attempt budget from where it is.
        budget = action.max_attempts
        if action.state in ("dead_lettered", "cancelled"):
            budget = action.attempts + (policy or RetryPolicy()).max_attempts
        changes = {"state": "pending", "next_attempt_at": now, "max_attempts": budget}
    changes.update(version=action.version + 1, updated_at=now)
    after = action.model_copy(update=changes)
    return after, _event(after, action.state, transition, now, actor,
                         error=error if transition in ("fail", "fail_permanent",
                                                       "lease_expired") else None,
                         result=result, reason=reason)


def _after_failure(action: Action, now: datetime, policy: RetryPolicy | None,
                   rng: Rng | None, error: ErrorEnvelope | None) -> dict[str, Any]:
    if policy is None or rng is None:
        raise ValueError("a failure needs the retry policy and an rng to schedule the retry")
    patient = now - action.created_at < timedelta(seconds=policy.patience_s)
    if action.attempts >= action.max_attempts and not patient:
        return {"state": "dead_lettered", "last_error": error}
    retry_after = error.retry_after_s if error is not None else None
    wait = policy.delay(action.attempts, rng, retry_after)
    return {"state": "retry_scheduled", "last_error": error,
            "next_attempt_at": now + timedelta(seconds=wait)}


def replay_state(events: list[ActionEvent]) -> ActionState:
    """The state an action's events lead to: the check that events alone tell its story."""
    if not events or events[0].transition != "create":
        raise ValueError("an action's history starts with its create event")
    state: ActionState = events[0].to_state
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq or (expected_seq > 1 and event.from_state != state):
            raise ValueError(f"event {event.event_id} does not follow state {state}")
        state = event.to_state
    return state


def default_rng() -> random.Random:
    """The production jitter source (tests inject a seeded `random.Random`)."""
    return random.Random()
