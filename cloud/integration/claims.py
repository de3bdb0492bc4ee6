"""Claiming due actions and recording what their delivery came to.

Work is split into lanes, one per (tenant, integration): a tenant's queue for one peer.
A claim takes one lane's breaker row with `FOR UPDATE SKIP LOCKED` (so two workers never
claim the same lane at once, and a worker that finds a lane busy moves on to the next
tenant), then its due actions with `FOR UPDATE SKIP LOCKED`, at most `lane_cap` in flight
per lane. On SQLite the BEGIN IMMEDIATE transaction is the lock. A claimed action carries
a lease: if its worker vanishes, the next claim of that lane schedules it again, and the
POS idempotency key makes the repeat harmless.

A tenant's lanes together hold at most its `concurrent_integrations` quota in flight: the
claim counts the tenant's in-flight actions under a per-tenant transaction lock
(`serialize_on`), so two replicas claiming two lanes of one tenant cannot both see room
for the last slot. A quota of 0 pauses the tenant: its actions stay pending, untouched.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from cloud.control.tenants import Quotas
from cloud.db import Database, Transaction, json_value
from cloud.integration.action_store import (
    action_from_row,
    lock_clause,
    read_action,
    read_breaker,
    save_transition,
    write_breaker,
)
from cloud.integration.breaker import BreakerPolicy
from cloud.integration.delivery import Outcome
from cloud.integration.lifecycle import RetryPolicy, Rng, apply
from sync.contracts.actions import Action
from sync.contracts.errors import ErrorEnvelope


@dataclass(frozen=True)
class Lane:
    """One tenant's queue for one integration."""

    tenant_id: str
    integration_id: str


@dataclass(frozen=True)
class Claim:
    """An action this worker now holds, and the token that proves it."""

    action: Action
    token: str


@dataclass(frozen=True)
class ClaimPolicy:
    """How much of a lane one claim may take, and how long a claim is held."""

    lane_cap: int = 2
    lease_s: float = 120.0
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()


_LEASE_LOST = ErrorEnvelope(code="worker.lease_expired", category="unavailable",
                            message="the worker holding this action stopped answering",
                            retryable=True)


def due_lanes(db: Database, now: datetime) -> list[Lane]:
    """Lanes with work due now (or a lapsed lease), oldest due first (fleet scope)."""
    with db.fleet() as tx:
        rows = tx.fetch_all(
            "SELECT tenant_id, integration_id, MIN(next_attempt_at) AS due "
            "FROM integration_actions WHERE (state IN ('pending', 'retry_scheduled') "
            "AND next_attempt_at <= :now) OR (state = 'in_flight' AND lease_until < :now) "
            "GROUP BY tenant_id, integration_id ORDER BY due, tenant_id, integration_id",
            {"now": now})
    return [Lane(r["tenant_id"], r["integration_id"]) for r in rows]


def tenant_room(tx: Transaction) -> int:
    """How many more actions the transaction's tenant may have in flight now, holding the
    tenant's claim lock until the transaction ends (the count stays true until commit).
    A tenant without a row (tests, a deleted tenant's leftovers) gets the default quota."""
    tx.serialize_on(f"integration-claims:{tx.tenant_id}")
    row = tx.fetch_one("SELECT quotas FROM tenants WHERE tenant_id = :tenant_id")
    quotas = Quotas.model_validate(json_value(row["quotas"])) if row else Quotas()
    busy = tx.fetch_one("SELECT COUNT(*) AS n FROM integration_actions "
                        "WHERE tenant_id = :tenant_id AND state = 'in_flight'")
    return max(0, quotas.concurrent_integrations - int(busy["n"] if busy else 0))


def claim_lane(db: Database, lane: Lane, now: datetime, want: int, worker: str,
               policy: ClaimPolicy, rng: Rng) -> list[Claim]:
    """Claim up to `want` due actions of `lane` (fewer if the lane is at its cap, the
    tenant at its concurrent_integrations quota, its breaker is open, or another worker
    is claiming it right now)."""
    actor = f"worker:{worker}"
    with db.tenant(lane.tenant_id) as tx:
        breaker = read_breaker(tx, lane.integration_id, lock=lock_clause(tx, skip_locked=True))
        if breaker is None:  # another worker holds the lane this instant
            return []
        before_breaker = breaker
        expired = tx.fetch_all(
            "SELECT * FROM integration_actions WHERE tenant_id = :tenant_id "
            "AND integration_id = :integration_id AND state = 'in_flight' AND lease_until < :now"
            + lock_clause(tx, skip_locked=True),
            {"integration_id": lane.integration_id, "now": now})
        for row in expired:
            old = action_from_row(row)
            new, event = apply(old, "lease_expired", now, actor=actor, policy=policy.retry,
                               rng=rng, error=_LEASE_LOST)
            save_transition(tx, old, new, event)
        if expired and breaker.probe_in_flight:
            breaker = breaker.model_copy(update={"probe_in_flight": False})
        busy = tx.fetch_one(
            "SELECT COUNT(*) AS n FROM integration_actions WHERE tenant_id = :tenant_id "
            "AND integration_id = :integration_id AND state = 'in_flight'",
            {"integration_id": lane.integration_id})
        admits = breaker.admits(now, policy.breaker)
        n = min(want, policy.lane_cap - int(busy["n"] if busy else 0),
                want if admits is None else admits)
        if n > 0:
            n = min(n, tenant_room(tx))
        claims: list[Claim] = []
        if n > 0:
            rows = tx.fetch_all(
                "SELECT * FROM integration_actions WHERE tenant_id = :tenant_id "
                "AND integration_id = :integration_id "
                "AND state IN ('pending', 'retry_scheduled') AND next_attempt_at <= :now "
                "ORDER BY next_attempt_at, created_at, action_id LIMIT :n"
                + lock_clause(tx, skip_locked=True),
                {"integration_id": lane.integration_id, "now": now, "n": n})
            for row in rows:
                old = action_from_row(row)
                new, event = apply(old, "claim", now, actor=actor)
                token = uuid.uuid4().hex
                save_transition(tx, old, new, event, claim_token=token,
                                lease_until=now + timedelta(seconds=policy.lease_s))
                claims.append(Claim(new, token))
            if claims:
                breaker = breaker.on_claim(now, policy.breaker)
        if breaker != before_breaker:
            write_breaker(tx, breaker, now)
    return claims


def finish(db: Database, claim: Claim, outcome: Outcome, now: datetime, worker: str,
           policy: ClaimPolicy, rng: Rng) -> Action | None:
    """Record a delivery's outcome on the action and on its lane's breaker, in one
    transaction. None if the claim was lost meanwhile (lease lapsed and re-claimed, or an
    operator acted): the newer holder's result counts, and the POS dedupes by key."""
    actor = f"worker:{worker}"
    tenant_id = claim.action.tenant_id
    with db.tenant(tenant_id) as tx:
        row = read_action(tx, claim.action.action_id, lock=True)
        if row is None or row["state"] != "in_flight" or row["claim_token"] != claim.token:
            return None
        before = action_from_row(row)
        if outcome.verdict == "delivered":
            after, event = apply(before, "succeed", now, actor=actor, result=outcome.result)
        elif outcome.verdict == "permanent":
            after, event = apply(before, "fail_permanent", now, actor=actor, error=outcome.error)
        else:
            after, event = apply(before, "fail", now, actor=actor, policy=policy.retry, rng=rng,
                                 error=outcome.error)
        save_transition(tx, before, after, event)
        breaker = read_breaker(tx, before.integration_id, lock=lock_clause(tx))
        if breaker is not None:
            if not outcome.reached_peer:  # decided without a request: no news of the peer
                updated = breaker.model_copy(update={"probe_in_flight": False})
            else:
                updated = (breaker.on_failure(now, policy.breaker)
                           if outcome.verdict == "retryable" else breaker.on_success())
            if updated != breaker:
                write_breaker(tx, updated, now)
    return after


def abandon(db: Database, claim: Claim, now: datetime, worker: str, policy: ClaimPolicy,
            rng: Rng, error: ErrorEnvelope) -> Action | None:
    """The worker could not even try (its config vanished or is disabled): count it as a
    failed attempt without touching the breaker, which says nothing about the peer."""
    with db.tenant(claim.action.tenant_id) as tx:
        row = read_action(tx, claim.action.action_id, lock=True)
        if row is None or row["state"] != "in_flight" or row["claim_token"] != claim.token:
            return None
        before = action_from_row(row)
        after, event = apply(before, "fail", now, actor=f"worker:{worker}",
                             policy=policy.retry, rng=rng, error=error)
        save_transition(tx, before, after, event)
    return after
