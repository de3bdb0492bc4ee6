"""Per-tenant provider usage and the cost-cap breaker.

Boxes report the day's running total per provider in every health report, so ingest
keeps the latest total per device, day, provider and kind (an older or repeated report
never adds). When a tenant's estimated cost of the UTC day reaches its routing policy's
`daily_cost_cap_cents`, the breaker switches the policy to the cheapest providers it
allows (tier basic), publishes it to the tenant's devices, audits it as
`system:cost-breaker` and logs `alert=cost_cap_reached` once; at the next UTC day it
restores the policy it replaced (unless an operator changed the policy meanwhile).
`decide_breaker` and `cheapest_policy` are pure; time and amounts are passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Literal

from pydantic import BaseModel

from cloud.control.audit import ChangeContext
from cloud.control.control_errors import ControlError
from cloud.control.db import CloudDb
from cloud.control.device_desired import plan_devices, publish, tenant_devices_to_publish
from cloud.control.flags import RoutingPolicy, routing_policy, set_routing_policy
from cloud.control.tenants import check_tenant_id, read_tenant
from cloud.db import Database, DatabaseError, Transaction, json_value
from sync.contracts.messages import Health
from sync.ids import new_id
from sync.structured_log import fields, log_context

log = logging.getLogger(__name__)

BREAKER_ACTOR = "system:cost-breaker"
Kind = Literal["asr", "tts", "nlu"]


class UsageTotal(BaseModel):
    """One provider's use by the tenant on one day, summed over its devices."""

    provider: str
    kind: Kind
    seconds: float
    tokens: int
    est_cost_cents: float


class BreakerState(BaseModel):
    """`open`: routing is on the cheapest providers since `opened_at` for `day`."""

    state: Literal["closed", "open"] = "closed"
    day: date | None = None
    opened_at: datetime | None = None
    previous_policy: RoutingPolicy | None = None


class UsageView(BaseModel):
    """Body of GET /tenants/{id}/usage: the day's totals against the tenant's cap."""

    tenant_id: str
    day: date
    providers: list[UsageTotal]
    cost_cents: float
    cap_cents: float | None
    cap_reached: bool
    breaker: BreakerState


class BreakerDecision(BaseModel):
    """What the breaker does now: nothing, open with `policy`, or restore `policy`."""

    action: Literal["none", "open", "restore", "close"]
    policy: RoutingPolicy | None = None


Rates = Mapping[str, tuple[str, float]]
"""provider -> (kind, cents per audio second, or per 1k tokens for nlu)."""


def _allows(allowed: list[str] | None, name: str) -> bool:
    """As the box's router reads the list: the name, or its engine family ("piper")."""
    return allowed is None or any(name == a or name.startswith(f"{a}-") for a in allowed)


def cheapest_policy(policy: RoutingPolicy, rates: Rates) -> RoutingPolicy:
    """`policy` narrowed to the cheapest providers of each kind it allows, tier basic.

    Only providers the boxes reported have a known rate; list entries that match none of
    them are kept (nothing says they cost more), reported ones that are not the cheapest of
    their kind are dropped. With no rates known only the tier changes.
    """
    candidates = {n: kr for n, kr in rates.items() if _allows(policy.allowed_providers, n)}
    best: dict[str, float] = {}
    for kind, rate in candidates.values():
        best[kind] = min(rate, best.get(kind, rate))
    cheapest = {n for n, (kind, rate) in candidates.items() if rate <= best[kind]}
    allowed = policy.allowed_providers
    if cheapest:
        unknown = {a for a in allowed or [] if not any(_allows([a], n) for n in rates)}
        allowed = sorted(cheapest | unknown)
    return policy.model_copy(update={"tier": "basic", "allowed_providers": allowed})


def decide_breaker(*, today: date, cost_cents: float, policy: RoutingPolicy,
                   policy_by_breaker: bool, breaker: BreakerState, rates: Rates) -> BreakerDecision:
    """The breaker's next step for a tenant whose day cost so far is `cost_cents`.

    `policy` is the one in force and `policy_by_breaker` whether the breaker set it last
    (an operator's change while open is kept at the day's end: the breaker only closes).
    """
    if breaker.state == "open":
        if breaker.day is not None and today <= breaker.day:
            return BreakerDecision(action="none")
        if policy_by_breaker and breaker.previous_policy is not None:
            return BreakerDecision(action="restore", policy=breaker.previous_policy)
        return BreakerDecision(action="close")
    cap = policy.daily_cost_cap_cents
    if cap is None or cost_cents < cap:
        return BreakerDecision(action="none")
    return BreakerDecision(action="open", policy=cheapest_policy(policy, rates))


def record_usage(tx: Transaction, health: Health) -> int:
    """Store the report's usage totals, each replacing an older report of the same device,
    day, provider and kind; returns how many rows were written (0: nothing new)."""
    written = 0
    for u in health.usage or []:
        written += tx.execute(
            "INSERT INTO tenant_usage (tenant_id, device_id, day, provider, kind, seconds, "
            "tokens, est_cost_cents, reported_at) VALUES (:tenant_id, :device_id, :day, "
            ":provider, :kind, :seconds, :tokens, :cost, :at) "
            "ON CONFLICT (tenant_id, day, device_id, provider, kind) DO UPDATE SET "
            "seconds = excluded.seconds, tokens = excluded.tokens, "
            "est_cost_cents = excluded.est_cost_cents, reported_at = excluded.reported_at "
            "WHERE tenant_usage.reported_at < excluded.reported_at",
            {"device_id": health.device_id, "day": u.day.isoformat(), "provider": u.provider,
             "kind": u.kind, "seconds": u.seconds, "tokens": u.tokens, "cost": u.est_cost_cents,
             "at": health.at})
    return written


def day_totals(tx: Transaction, day: date) -> list[UsageTotal]:
    rows = tx.fetch_all(
        "SELECT provider, kind, SUM(seconds) AS seconds, SUM(tokens) AS tokens, "
        "SUM(est_cost_cents) AS cost FROM tenant_usage WHERE tenant_id = :tenant_id "
        "AND day = :day GROUP BY provider, kind ORDER BY provider, kind", {"day": day.isoformat()})
    return [UsageTotal(provider=r["provider"], kind=r["kind"], seconds=round(float(r["seconds"]), 3),
                       tokens=int(r["tokens"]), est_cost_cents=round(float(r["cost"]), 4))
            for r in rows]


def provider_rates(tx: Transaction) -> dict[str, tuple[str, float]]:
    """Each reported provider's cost per unit, from everything the tenant's boxes reported."""
    rows = tx.fetch_all(
        "SELECT provider, kind, SUM(seconds) AS seconds, SUM(tokens) AS tokens, "
        "SUM(est_cost_cents) AS cost FROM tenant_usage WHERE tenant_id = :tenant_id "
        "GROUP BY provider, kind")
    rates: dict[str, tuple[str, float]] = {}
    for r in rows:
        cost, units = float(r["cost"]), (
            int(r["tokens"]) / 1000 if r["kind"] == "nlu" else float(r["seconds"]))
        if units > 0 or cost == 0:
            rates[str(r["provider"])] = (str(r["kind"]), cost / units if units > 0 else 0.0)
    return rates


def breaker_state(tx: Transaction) -> BreakerState:
    row = tx.fetch_one("SELECT state, day, opened_at, previous_policy FROM cost_breakers "
                       "WHERE tenant_id = :tenant_id")
    if row is None:
        return BreakerState()
    previous = json_value(row["previous_policy"]) if row["previous_policy"] is not None else None
    return BreakerState(state=row["state"], day=row["day"], opened_at=row["opened_at"],
                        previous_policy=previous)


def _save_breaker(tx: Transaction, state: BreakerState, now: datetime) -> None:
    params: dict[str, object] = {
        "state": state.state, "day": state.day.isoformat() if state.day else None,
        "opened_at": state.opened_at, "now": now,
        "previous": state.previous_policy.model_dump(mode="json") if state.previous_policy else None}
    if not tx.execute("UPDATE cost_breakers SET state = :state, day = :day, opened_at = :opened_at, "
                      "previous_policy = :previous, updated_at = :now WHERE tenant_id = :tenant_id",
                      params):
        tx.execute("INSERT INTO cost_breakers (tenant_id, state, day, opened_at, previous_policy, "
                   "updated_at) VALUES (:tenant_id, :state, :day, :opened_at, :previous, :now)",
                   params)


def usage_view(tx: Transaction, day: date) -> UsageView:
    totals = day_totals(tx, day)
    cost = round(sum(t.est_cost_cents for t in totals), 4)
    cap = routing_policy(tx).policy.daily_cost_cap_cents
    return UsageView(tenant_id=str(tx.tenant_id), day=day, providers=totals, cost_cents=cost,
                     cap_cents=cap, cap_reached=cap is not None and cost >= cap,
                     breaker=breaker_state(tx))


def check_breaker(db: Database, cloud_db: CloudDb, tenant_id: str, now: datetime) -> BreakerDecision:
    """Run the breaker for one tenant at `now`: store its step, publish, alert on opening."""
    ctx = ChangeContext(actor=BREAKER_ACTOR, request_id=new_id("job"), now=now)
    today = now.astimezone(UTC).date()
    with db.tenant(check_tenant_id(tenant_id)) as tx:
        if read_tenant(tx) is None:
            return BreakerDecision(action="none")
        view = routing_policy(tx)
        breaker = breaker_state(tx)
        cost = sum(t.est_cost_cents for t in day_totals(tx, today))
        decision = decide_breaker(today=today, cost_cents=cost, policy=view.policy,
                                  policy_by_breaker=view.updated_by == BREAKER_ACTOR,
                                  breaker=breaker, rates=provider_rates(tx))
        if decision.action == "none":
            return decision
        if decision.action == "open":
            _save_breaker(tx, BreakerState(state="open", day=today, opened_at=now,
                                           previous_policy=view.policy), now)
        else:
            _save_breaker(tx, BreakerState(), now)
        plans = []
        if decision.policy is not None:
            set_routing_policy(tx, ctx, decision.policy)
            plans = plan_devices(tx, cloud_db, tenant_devices_to_publish(tx, cloud_db))
    with log_context(tenant_id=tenant_id):
        if decision.action == "open":
            log.warning("tenant cost cap reached; routing on the cheapest providers", extra=fields(
                alert="cost_cap_reached", day=today.isoformat(), cost_cents=round(cost, 4),
                cap_cents=view.policy.daily_cost_cap_cents))
        else:
            log.info("cost breaker closed for the new day", extra=fields(
                action=decision.action, day=today.isoformat()))
        publish(db, cloud_db, ctx, tenant_id, plans, f"cost breaker {decision.action}")
    return decision


def on_health(db: Database, cloud_db: CloudDb, health: Health, now: datetime) -> None:
    """Ingest's hook for every health report: store its usage, then run the breaker.
    Errors are logged, never raised: health must not hold up the events of its batch."""
    with log_context(tenant_id=health.tenant_id, device_id=health.device_id):
        try:
            if health.usage:
                with db.tenant(check_tenant_id(health.tenant_id)) as tx:
                    record_usage(tx, health)
            check_breaker(db, cloud_db, health.tenant_id, now)
        except (DatabaseError, ControlError) as err:
            log.error("usage of a health report not recorded", extra=fields(error=str(err)))
