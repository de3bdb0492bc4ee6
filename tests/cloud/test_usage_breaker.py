"""Per-tenant usage from health reports and the cost-cap breaker, on both backends: a
repeated report counts once, reaching the cap switches routing to the cheapest providers
(published, audited as system:cost-breaker, alerted once) and the next UTC day restores it."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud.config import CloudConfig
from cloud.control.flags import RoutingPolicy
from cloud.control.ingest import Ingest, ingest_link
from cloud.control.usage import BreakerState, cheapest_policy, decide_breaker, on_health
from sync.contracts.messages import Health, ProviderUsage
from sync.topics import DeviceTopics
from tests.cloud.control_client import TenantTokens, enrol, new_tenant

DAY = date(2026, 11, 25)
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
POLICY = {"tier": "premium", "allowed_providers": ["asr-a", "asr-b", "piper"],
          "daily_cost_cap_cents": 10.0}


class _Fleet:
    """The real ingest (never connected: health needs no acks) writing into the app's
    databases, with its clock in the test's hands."""

    def __init__(self, client: TestClient, tmp_path: Path) -> None:
        self.now = NOON
        state = client.app.state  # type: ignore[attr-defined]
        self.ingest = Ingest(state.db, ingest_link(CloudConfig(db_path=tmp_path / "x.sqlite3")),
                             clock=lambda: self.now,
                             on_health=lambda h, now: on_health(state.control.db, state.db, h, now))

    def health(self, t: TenantTokens, device_id: str, at: datetime,
               usage: list[tuple[str, str, float, float]]) -> None:
        report = Health(tenant_id=t.tenant_id, device_id=device_id, at=at, outbox_depth=0,
                        firmware="test", usage=[
                            ProviderUsage(day=at.date(), provider=p, kind=k, seconds=s,  # type: ignore[arg-type]
                                          est_cost_cents=c) for p, k, s, c in usage])
        self.ingest.handle(DeviceTopics(t.tenant_id, device_id).health,
                           report.model_dump_json().encode())


def _usage(client: TestClient, t: TenantTokens, day: date) -> dict[str, Any]:
    r = client.get(f"{t.base}/usage", headers=t.auth, params={"day": day.isoformat()})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _routing(client: TestClient, t: TenantTokens, device_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"{t.base}/devices/{device_id}/desired",
                                      headers=t.auth).json()["desired"]["routing"]
    return body


def _breaker_audit(client: TestClient, t: TenantTokens) -> list[dict[str, Any]]:
    return [e for e in client.get(f"{t.base}/audit", headers=t.auth).json()
            if e["actor"] == "system:cost-breaker" and e["action"] == "routing.set"]


def test_cap_switches_to_cheapest_then_next_day_restores(
        client: TestClient, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fleet = _Fleet(client, tmp_path)
    t = new_tenant(client, "Costly")
    enrol(client, t, "box1")
    assert client.put(f"{t.base}/routing", headers=t.auth, json=POLICY).status_code == 200
    under = [("asr-a", "asr", 10.0, 5.0), ("asr-b", "asr", 5.0, 0.5), ("piper-joe", "tts", 3.0, 0.0)]
    fleet.health(t, "box1", NOON, under)
    fleet.health(t, "box1", NOON, under)  # the same report again: counted once
    day = _usage(client, t, DAY)
    assert [(p["provider"], p["seconds"]) for p in day["providers"]] == [
        ("asr-a", 10.0), ("asr-b", 5.0), ("piper-joe", 3.0)]
    assert (day["cost_cents"], day["cap_cents"], day["cap_reached"]) == (5.5, 10.0, False)
    assert day["breaker"]["state"] == "closed" and _breaker_audit(client, t) == []

    caplog.set_level(logging.INFO, logger="cloud.control.usage")
    over = [("asr-a", "asr", 20.0, 10.0), ("asr-b", "asr", 5.0, 0.5), ("piper-joe", "tts", 3.0, 0.0)]
    fleet.now = NOON + timedelta(minutes=1)
    fleet.health(t, "box1", fleet.now, over)
    fleet.health(t, "box1", NOON, under)  # a late older report changes nothing
    fleet.health(t, "box1", fleet.now, over)
    day = _usage(client, t, DAY)
    assert (day["cost_cents"], day["cap_reached"], day["breaker"]["state"]) == (10.5, True, "open")
    assert day["breaker"]["previous_policy"]["tier"] == "premium"
    assert _routing(client, t, "box1") == {"tier": "basic", "allowed_providers": ["asr-b", "piper-joe"]}
    assert len(_breaker_audit(client, t)) == 1
    alerts = [r for r in caplog.records if getattr(r, "fields", {}).get("alert") == "cost_cap_reached"]
    assert len(alerts) == 1

    fleet.now = datetime(2026, 11, 26, 0, 5, tzinfo=UTC)
    fleet.health(t, "box1", fleet.now, [("asr-b", "asr", 1.0, 0.1)])
    assert _routing(client, t, "box1") == {"tier": "premium",
                                           "allowed_providers": ["asr-a", "asr-b", "piper"]}
    policy = client.get(f"{t.base}/routing", headers=t.auth).json()["policy"]
    assert policy == {**POLICY, "cost_cap_per_audio_s": None, "cost_cap_per_1k_tokens": None}
    next_day = _usage(client, t, DAY + timedelta(days=1))
    assert next_day["breaker"]["state"] == "closed" and next_day["cost_cents"] == 0.1
    assert len(_breaker_audit(client, t)) == 2
    assert _usage(client, t, DAY)["cost_cents"] == 10.5  # yesterday kept


def test_tenant_under_its_cap_is_untouched(client: TestClient, tmp_path: Path) -> None:
    fleet = _Fleet(client, tmp_path)
    t = new_tenant(client, "Thrifty")
    enrol(client, t, "box1")
    enrol(client, t, "box2")
    policy = {**POLICY, "daily_cost_cap_cents": 100.0}
    assert client.put(f"{t.base}/routing", headers=t.auth, json=policy).status_code == 200
    fleet.health(t, "box1", NOON, [("asr-a", "asr", 60.0, 30.0)])
    fleet.health(t, "box2", NOON, [("asr-a", "asr", 60.0, 30.0)])  # devices add up
    day = _usage(client, t, DAY)
    assert (day["cost_cents"], day["cap_reached"], day["breaker"]["state"]) == (60.0, False, "closed")
    assert _routing(client, t, "box1")["tier"] == "premium"
    assert _breaker_audit(client, t) == []
    other = new_tenant(client, "Other")
    r = client.get(f"{t.base}/usage", headers={"Authorization": f"Bearer {other.author}"})
    assert r.status_code == 404, r.text


def test_cheapest_policy_and_breaker_decisions() -> None:
    rates = {"asr-a": ("asr", 0.5), "asr-b": ("asr", 0.1), "piper-joe": ("tts", 0.0)}
    policy = RoutingPolicy.model_validate(POLICY)
    cheap = cheapest_policy(policy, rates)
    assert (cheap.tier, cheap.allowed_providers) == ("basic", ["asr-b", "piper-joe"])
    listed = RoutingPolicy(allowed_providers=["asr-a", "nlu-x"])  # nlu-x: nothing reported
    assert cheapest_policy(listed, rates).allowed_providers == ["asr-a", "nlu-x"]
    assert cheapest_policy(RoutingPolicy(), {}).allowed_providers is None
    closed = BreakerState()
    assert decide_breaker(today=DAY, cost_cents=9.9, policy=policy, policy_by_breaker=False,
                          breaker=closed, rates=rates).action == "none"
    opened = decide_breaker(today=DAY, cost_cents=10.0, policy=policy, policy_by_breaker=False,
                            breaker=closed, rates=rates)
    assert (opened.action, opened.policy) == ("open", cheap)
    open_state = BreakerState(state="open", day=DAY, previous_policy=policy)
    assert decide_breaker(today=DAY, cost_cents=50.0, policy=cheap, policy_by_breaker=True,
                          breaker=open_state, rates=rates).action == "none"
    restore = decide_breaker(today=DAY + timedelta(days=1), cost_cents=0.0, policy=cheap,
                             policy_by_breaker=True, breaker=open_state, rates=rates)
    assert (restore.action, restore.policy) == ("restore", policy)
    # An operator changed the policy while open: the day's end only closes the breaker.
    assert decide_breaker(today=DAY + timedelta(days=1), cost_cents=0.0, policy=cheap,
                          policy_by_breaker=False, breaker=open_state, rates=rates).action == "close"
