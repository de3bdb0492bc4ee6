"""The tenant's policy (calls_per_min, transcript and recording retention) rides in every
desired-state document, and a tenant PATCH that changes it publishes a new version to
every device of the tenant; over the real API on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from cloud.control.db import CloudDb
from sync.contracts.messages import DesiredState, TenantPolicy
from tests.cloud.control_client import (
    OPS_AUTH,
    TenantTokens,
    approved_version,
    enrol,
    envelope,
    new_tenant,
    overlay,
    promote,
)

DEFAULT_POLICY = {"calls_per_min": 30, "transcripts_days": 30, "recordings_days": 0}


def _cloud_db(client: TestClient) -> CloudDb:
    db: CloudDb = client.app.state.db  # type: ignore[attr-defined]
    return db


def _desired(client: TestClient, t: TenantTokens, device_id: str) -> DesiredState:
    r = client.get(f"{t.base}/devices/{device_id}/desired", headers=t.auth)
    assert r.status_code == 200, r.text
    return DesiredState.model_validate(r.json()["desired"])


def _versions(client: TestClient, t: TenantTokens) -> dict[str, int]:
    return {d: want for _, d, want, *_ in _cloud_db(client).desired_versions(t.tenant_id)}


def _patch(client: TestClient, t: TenantTokens, body: dict[str, Any]) -> dict[str, Any]:
    r = client.patch(t.base, headers=OPS_AUTH, json=body)
    assert r.status_code == 200, r.text
    tenant: dict[str, Any] = r.json()
    return tenant


def test_policy_patch_publishes_to_every_device(client: TestClient) -> None:
    t = new_tenant(client, "Policy")
    enrol(client, t, "box1", "dev")
    enrol(client, t, "box2")
    promote(client, t, approved_version(client, t, {"overlay": overlay("Policy v1")}), "dev")
    assert _versions(client, t) == {"box1": 1}
    assert _desired(client, t, "box1").policy == TenantPolicy(**DEFAULT_POLICY)

    tenant = _patch(client, t, {"quotas": {"calls_per_min": 5}})
    assert tenant["quotas"]["calls_per_min"] == 5
    assert _versions(client, t) == {"box1": 2, "box2": 1}
    for device_id in ("box1", "box2"):
        assert _desired(client, t, device_id).policy == TenantPolicy(
            **{**DEFAULT_POLICY, "calls_per_min": 5})
    # The policy version keeps what the rollout put there.
    box1 = _desired(client, t, "box1")
    assert box1.blueprint_overlay is not None
    assert box1.blueprint_overlay["restaurant"] == "Policy v1"
    assert box1.flags == {"answer_calls": True}
    # The downlink sends the newest unpublished version of each device: the new policy.
    pending = {d.device_id: d for d in _cloud_db(client).unpublished_desired()
               if d.tenant_id == t.tenant_id}
    assert {k: (v.version, v.policy.calls_per_min if v.policy else None)
            for k, v in pending.items()} == {"box1": (2, 5), "box2": (1, 5)}

    _patch(client, t, {"retention": {"recordings_days": 7, "transcripts_days": 0}})
    assert _versions(client, t) == {"box1": 3, "box2": 2}
    assert _desired(client, t, "box2").policy == TenantPolicy(
        calls_per_min=5, transcripts_days=0, recordings_days=7)

    audit = client.get(f"{t.base}/audit", headers=t.auth, params={"limit": 1000}).json()
    policy_publishes = sorted(
        (e["resource"], e["after"]["version"]) for e in audit
        if e["action"] == "desired.publish" and e["after"]["reason"] == "tenant policy")
    assert policy_publishes == [("devices/box1/desired", 2), ("devices/box1/desired", 3),
                                ("devices/box2/desired", 1), ("devices/box2/desired", 2)]
    last = next(e for e in audit if e["action"] == "desired.publish")
    assert last["after"]["policy"] == {"calls_per_min": 5, "transcripts_days": 0,
                                       "recordings_days": 7}


def test_patch_that_leaves_the_policy_alone_publishes_nothing(client: TestClient) -> None:
    t = new_tenant(client, "Quiet")
    enrol(client, t, "box1")
    _patch(client, t, {"quotas": {"calls_per_min": 9}})
    assert _versions(client, t) == {"box1": 1}
    assert _patch(client, t, {"name": "Quiet Renamed"})["name"] == "Quiet Renamed"
    _patch(client, t, {"tier": "enterprise"})
    _patch(client, t, {"quotas": {"api_requests_per_s": 500, "concurrent_integrations": 2},
                       "retention": {"events_days": 90, "actions_days": 30}})
    _patch(client, t, {"quotas": {"calls_per_min": 9}})  # the same value again
    assert _versions(client, t) == {"box1": 1}
    audit = client.get(f"{t.base}/audit", headers=t.auth, params={"limit": 1000}).json()
    assert [e["action"] for e in audit].count("tenant.update") == 5
    assert [e["action"] for e in audit].count("desired.publish") == 1


def test_bad_patch_is_refused_and_publishes_nothing(client: TestClient) -> None:
    t = new_tenant(client, "Strict")
    enrol(client, t, "box1")
    _patch(client, t, {"quotas": {"calls_per_min": 3}})
    for body in ({"quotas": {"calls_per_min": -1}}, {"retention": {"recordings_days": 9999}},
                 {"quotas": {"calls_per_minute": 2}}):
        envelope(client.patch(t.base, headers=OPS_AUTH, json=body), 422, "request.invalid")
    # A tenant token may read its tenant but never change its quotas.
    envelope(client.patch(t.base, headers=t.auth, json={"quotas": {"calls_per_min": 1}}),
             403, "auth.scope")
    envelope(client.patch("/api/v1/tenants/no-such-tenant", headers=OPS_AUTH,
                          json={"quotas": {"calls_per_min": 1}}), 404, "tenant.not_found")
    assert _versions(client, t) == {"box1": 1}
    assert _desired(client, t, "box1").policy == TenantPolicy(
        **{**DEFAULT_POLICY, "calls_per_min": 3})
    assert client.get(t.base, headers=t.auth).json()["quotas"]["calls_per_min"] == 3


def test_every_publish_path_carries_the_policy(client: TestClient) -> None:
    t = new_tenant(client, "Paths", quotas={"api_requests_per_s": 1000, "calls_per_min": 12})
    want = TenantPolicy(**{**DEFAULT_POLICY, "calls_per_min": 12})
    enrol(client, t, "box1", "dev")
    promoted = promote(client, t, approved_version(client, t, {"overlay": overlay("P")}), "dev")
    assert [DesiredState.model_validate(d).policy for d in promoted["published"]] == [want]
    flag = client.put(f"{t.base}/flags/answer_calls", headers=t.auth, json={"value": False})
    assert flag.status_code == 200, flag.text
    assert [DesiredState.model_validate(d).policy for d in flag.json()["published"]] == [want]
    routing = client.put(f"{t.base}/routing", headers=t.auth, json={"tier": "premium"})
    assert routing.status_code == 200, routing.text
    assert [DesiredState.model_validate(d).policy for d in routing.json()["published"]] == [want]
    # The raw ops PUT carries the tenant's policy and cannot set one of its own.
    raw = client.put(f"{t.base}/devices/box1/desired", headers=OPS_AUTH,
                     json={"flags": {"answer_calls": True}})
    assert raw.status_code == 200, raw.text
    assert DesiredState.model_validate(raw.json()).policy == want
    refused = envelope(client.put(f"{t.base}/devices/box1/desired", headers=OPS_AUTH,
                                  json={"policy": {"calls_per_min": 1000}}),
                       422, "request.invalid")
    assert "PATCH /api/v1/tenants" in refused.message
    assert _desired(client, t, "box1").version == 4
