"""The integration plane's action lifecycle as data: states, transitions and their events.

An action is one piece of outbound work for an order (write it to the POS, deliver a
webhook). Its state only moves by a named transition, and every transition is recorded
as an immutable `ActionEvent`, so an action's history can be read back (and its current
state rebuilt) from its events alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sync.contracts.errors import ErrorEnvelope

ACTION_SCHEMA_VERSION = "1.0"

ActionState = Literal[
    "pending", "in_flight", "succeeded", "retry_scheduled", "dead_lettered", "cancelled",
    "superseded",
]
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "cancelled", "superseded"})
"""States no worker ever leaves (dead_lettered waits for an operator, so it is not one)."""

ActionKind = Literal["pos_write", "pos_cancel", "webhook"]
"""pos_write creates the order on the POS; pos_cancel cancels it there once the write settled."""

Transition = Literal[
    "create",          # (none) -> pending
    "claim",           # pending | retry_scheduled (due) -> in_flight
    "succeed",         # in_flight -> succeeded
    "fail",            # in_flight -> retry_scheduled, or dead_lettered when out of attempts
    "fail_permanent",  # in_flight -> dead_lettered (the peer refused the request itself)
    "lease_expired",   # in_flight -> retry_scheduled | dead_lettered (its worker vanished)
    "cancel",          # pending | retry_scheduled | dead_lettered -> cancelled (order cancelled)
    "supersede",       # pending | retry_scheduled | dead_lettered -> superseded (order replaced)
    "retry_now",       # retry_scheduled | dead_lettered -> pending (operator)
    "skip",            # pending | retry_scheduled | dead_lettered -> cancelled (operator)
    "resolve",         # pending | retry_scheduled | dead_lettered -> succeeded (operator, done by hand)
    "replay",          # dead_lettered | cancelled -> pending (operator replays the order)
]


class Action(BaseModel):
    """One unit of outbound work for an order, as stored; changed only through transitions."""

    model_config = ConfigDict(frozen=True)

    schema_version: str = Field(default=ACTION_SCHEMA_VERSION, pattern=r"^1\.\d+$")
    action_id: str
    tenant_id: str
    order_id: str
    kind: ActionKind
    integration_id: str = Field(description="the tenant's configured integration it targets")
    key: str = Field(description="idempotency key: the same key never makes a second effect")
    state: ActionState
    attempts: int = Field(ge=0, description="deliveries started so far")
    max_attempts: int = Field(ge=1)
    next_attempt_at: datetime = Field(description="when it is due (pending/retry_scheduled)")
    payload: dict[str, Any] = Field(description="what to send, fixed at creation")
    result: dict[str, Any] | None = Field(default=None, description="the peer's answer on success")
    last_error: ErrorEnvelope | None = None
    version: int = Field(ge=1, description="number of events so far; the last event's seq")
    created_at: datetime
    updated_at: datetime


class ActionEvent(BaseModel):
    """One transition of one action: immutable, numbered per action from 1."""

    model_config = ConfigDict(frozen=True)

    schema_version: str = Field(default=ACTION_SCHEMA_VERSION, pattern=r"^1\.\d+$")
    event_id: str
    action_id: str
    tenant_id: str
    order_id: str
    seq: int = Field(ge=1)
    transition: Transition
    from_state: ActionState | None
    to_state: ActionState
    at: datetime
    attempt: int = Field(ge=0, description="the action's attempt count after this transition")
    next_attempt_at: datetime | None = None
    error: ErrorEnvelope | None = None
    result: dict[str, Any] | None = None
    actor: str = Field(description="'worker:<id>', 'planner', or the operator's token actor")
    reason: str | None = None
