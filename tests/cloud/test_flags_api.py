"""Feature flags, kill switches and routing policies over the real API on both backends:
device over tenant over default, every change published as desired state and audited."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from cloud.control.flags import DEFAULT_FLAGS, resolve_flags
from tests.cloud.control_client import (
    TenantTokens,
    approved_version,
    enrol,
    envelope,
    new_tenant,
    overlay,
    promote,
)


def _desired(client: TestClient, t: TenantTokens, device_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"{t.base}/devices/{device_id}/desired",
                                      headers=t.auth).json()["desired"]
    return body


def test_resolution_is_device_then_tenant_then_default() -> None:
    got = resolve_flags(DEFAULT_FLAGS, {"answer_calls": False, "beta": True}, {"beta": False})
    assert [(f.flag, f.value, f.source) for f in got] == [
        ("answer_calls", False, "tenant"), ("beta", False, "device")]
    assert [(f.flag, f.value, f.source) for f in resolve_flags(DEFAULT_FLAGS, {}, {})] == [
        ("answer_calls", True, "default")]


def test_kill_switch_per_tenant_and_per_device_is_published(client: TestClient) -> None:
    t = new_tenant(client, "Kill")
    enrol(client, t, "box1", "dev")
    enrol(client, t, "box2")
    v = approved_version(client, t, {"overlay": overlay("Kill v1")})
    promote(client, t, v, "dev")
    off = client.put(f"{t.base}/flags/answer_calls", headers=t.auth, json={"value": False})
    assert off.status_code == 200, off.text
    assert sorted((d["device_id"], d["flags"]["answer_calls"]) for d in off.json()["published"]) \
        == [("box1", False), ("box2", False)]
    # The rollout's overlay stays in the flag's desired state.
    assert _desired(client, t, "box1")["blueprint_overlay"]["restaurant"] == "Kill v1"
    on = client.put(f"{t.base}/devices/box2/flags/answer_calls", headers=t.auth,
                    json={"value": True})
    assert [d["device_id"] for d in on.json()["published"]] == ["box2"]
    assert _desired(client, t, "box2")["flags"] == {"answer_calls": True}
    assert _desired(client, t, "box1")["flags"] == {"answer_calls": False}
    flags = client.get(f"{t.base}/devices/box2/flags", headers=t.auth).json()
    assert flags == [{"flag": "answer_calls", "value": True, "source": "device"}]
    same = client.put(f"{t.base}/devices/box2/flags/answer_calls", headers=t.auth,
                      json={"value": True})
    assert same.json()["published"] == []  # nothing changed, nothing sent
    unset = client.put(f"{t.base}/devices/box2/flags/answer_calls", headers=t.auth,
                       json={"value": None})
    assert unset.json()["published"][0]["flags"] == {"answer_calls": False}
    assert client.get(f"{t.base}/flags", headers=t.auth).json()["flags"] == {
        "answer_calls": False}
    envelope(client.put(f"{t.base}/flags/Bad-Name", headers=t.auth, json={"value": True}),
             422, "flag.name_invalid")
    envelope(client.put(f"{t.base}/devices/nobox/flags/answer_calls", headers=t.auth,
                        json={"value": True}), 404, "device.not_found")
    audit = [(e["action"], e["resource"]) for e in client.get(f"{t.base}/audit",
                                                              headers=t.auth).json()]
    assert ("flag.set", "flags/answer_calls") in audit
    assert ("flag.set", "devices/box2/flags/answer_calls") in audit
    assert ("flag.unset", "devices/box2/flags/answer_calls") in audit


def test_routing_policy_is_stored_and_published(client: TestClient) -> None:
    t = new_tenant(client, "Route")
    enrol(client, t, "box1")
    assert client.get(f"{t.base}/routing", headers=t.auth).json()["policy"]["tier"] == "standard"
    policy = {"tier": "premium", "allowed_providers": ["whisper-base", "piper"],
              "cost_cap_per_audio_s": 0.002}
    r = client.put(f"{t.base}/routing", headers=t.auth, json=policy)
    assert r.status_code == 200, r.text
    assert r.json()["published"][0]["routing"] == policy
    assert _desired(client, t, "box1")["routing"] == policy
    envelope(client.put(f"{t.base}/routing", headers=t.auth, json={"tier": "gold"}), 422,
             "request.invalid")
    envelope(client.put(f"{t.base}/routing", headers=t.auth, json={"cost_cap_per_audio_s": -1}),
             422, "request.invalid")
    assert client.get(f"{t.base}/routing", headers=t.auth).json()["policy"]["tier"] == "premium"
    other = new_tenant(client, "Other")
    envelope(client.put(f"{t.base}/routing", headers=other.auth, json={"tier": "basic"}), 404,
             "tenant.not_found")
    envelope(client.get(f"{t.base}/flags", headers=other.auth), 404, "tenant.not_found")
    assert client.get(f"{t.base}/routing", headers=t.auth).json()["policy"]["tier"] == "premium"
    audit = client.get(f"{t.base}/audit", headers=t.auth).json()
    assert any(e["action"] == "routing.set" and e["after"]["tier"] == "premium" for e in audit)
