"""The blueprint/menu lifecycle over the real API, on SQLite and PostgreSQL: draft,
second-person approval, staged promotion that writes desired state, diff, rollback,
validation at upload, and tenant isolation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml
from fastapi.testclient import TestClient

from cloud.control.db import CloudDb
from sync.contracts.messages import ReportedState
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


def _cloud_db(client: TestClient) -> CloudDb:
    db: CloudDb = client.app.state.db  # type: ignore[attr-defined]
    return db


def _desired(client: TestClient, t: TenantTokens, device_id: str) -> dict[str, Any]:
    r = client.get(f"{t.base}/devices/{device_id}/desired", headers=t.auth)
    assert r.status_code == 200, r.text
    desired: dict[str, Any] = r.json()["desired"]
    return desired


def test_draft_approve_promote_through_every_stage(client: TestClient) -> None:
    t = new_tenant(client, "Tony's")
    enrol(client, t, "box-dev", "dev")
    enrol(client, t, "box-stg", "staging")
    enrol(client, t, "box-prod", "prod")
    draft = client.post(f"{t.base}/rollouts", headers=t.auth,
                        json={"overlay": overlay("Tony's v1"), "note": "first"})
    assert draft.status_code == 201, draft.text
    assert draft.json()["state"] == "draft" and draft.json()["version"] == 1
    v = draft.json()["version"]
    assert client.post(f"{t.base}/rollouts/{v}/submit", headers=t.auth).json()["state"] == \
        "submitted"
    approved = client.post(f"{t.base}/rollouts/{v}/approve", headers=t.approver_auth).json()
    assert approved["state"] == "approved" and approved["approved_by"] != approved["author"]
    dev = promote(client, t, v, "dev")
    assert [d["device_id"] for d in dev["published"]] == ["box-dev"]
    assert dev["published"][0]["blueprint_overlay"]["restaurant"] == "Tony's v1"
    assert dev["published"][0]["flags"] == {"answer_calls": True}
    assert _desired(client, t, "box-dev")["blueprint_overlay"]["restaurant"] == "Tony's v1"
    envelope(client.get(f"{t.base}/devices/box-prod/desired", headers=t.auth), 404,
             "device.no_desired_state")
    assert [d["device_id"] for d in promote(client, t, v, "staging")["published"]] == ["box-stg"]
    prod = promote(client, t, v, "prod")
    assert prod["version"]["promoted_to"] == ["dev", "staging", "prod"]
    stages = client.get(f"{t.base}/stages", headers=t.auth).json()
    assert [(s["stage"], s["live_version"], s["devices"]) for s in stages] == [
        ("dev", 1, ["box-dev"]), ("staging", 1, ["box-stg"]), ("prod", 1, ["box-prod"])]
    status = client.get(f"{t.base}/rollouts/{v}/status", headers=t.auth).json()
    assert status["applied"] == 0 and {d["state"] for d in status["devices"]} == {"pending"}
    # The box reports it applied (as ingest stores it): the status says so.
    desired = _desired(client, t, "box-stg")
    _cloud_db(client).record_reported(ReportedState(
        tenant_id=t.tenant_id, device_id="box-stg", at=datetime.now(UTC),
        applied_version=desired["version"], status="applied"), datetime.now(UTC))
    status = client.get(f"{t.base}/rollouts/{v}/status", headers=t.auth).json()
    assert status["applied"] == 1
    assert [(d["device_id"], d["state"]) for d in status["devices"]] == [
        ("box-dev", "pending"), ("box-prod", "pending"), ("box-stg", "applied")]
    actions = [e["action"] for e in client.get(f"{t.base}/audit", headers=t.auth,
                                               params={"limit": 1000}).json()]
    for action in ("rollout.draft", "rollout.submit", "rollout.approve", "rollout.promote",
                   "desired.publish", "device.stage"):
        assert action in actions, action
    history = client.get(f"{t.base}/rollouts", headers=t.auth).json()
    assert [h["version"] for h in history] == [1]


def test_self_approval_is_refused_and_changes_nothing(client: TestClient) -> None:
    t = new_tenant(client, "Solo")
    v = client.post(f"{t.base}/rollouts", headers=t.auth,
                    json={"overlay": overlay("Solo")}).json()["version"]
    envelope(client.post(f"{t.base}/rollouts/{v}/approve", headers=t.approver_auth), 409,
             "rollout.not_submitted")
    client.post(f"{t.base}/rollouts/{v}/submit", headers=t.auth)
    env = envelope(client.post(f"{t.base}/rollouts/{v}/approve", headers=t.auth), 409,
                   "rollout.self_approval")
    assert "different" in env.message
    got = client.get(f"{t.base}/rollouts/{v}", headers=t.auth).json()
    assert got["state"] == "submitted" and got["approved_by"] is None


def test_promotion_without_approval_or_skipping_a_stage_is_409(client: TestClient) -> None:
    t = new_tenant(client, "Hasty")
    enrol(client, t, "box1", "dev")
    v = client.post(f"{t.base}/rollouts", headers=t.auth,
                    json={"overlay": overlay("Hasty")}).json()["version"]
    url = f"{t.base}/rollouts/{v}/promote"
    envelope(client.post(url, headers=t.auth, json={"stage": "dev"}), 409, "rollout.not_approved")
    client.post(f"{t.base}/rollouts/{v}/submit", headers=t.auth)
    envelope(client.post(url, headers=t.auth, json={"stage": "dev"}), 409, "rollout.not_approved")
    client.post(f"{t.base}/rollouts/{v}/approve", headers=t.approver_auth)
    envelope(client.post(url, headers=t.auth, json={"stage": "prod"}), 409,
             "rollout.stage_skipped")
    envelope(client.post(url, headers=t.auth, json={"stage": "moon"}), 422, "request.invalid")
    assert _cloud_db(client).desired_versions(t.tenant_id) == []  # nothing was published
    promote(client, t, v, "dev")
    envelope(client.post(url, headers=t.auth, json={"stage": "dev"}), 409,
             "rollout.already_promoted")


def test_invalid_uploads_are_refused_with_file_path_and_reason(client: TestClient) -> None:
    t = new_tenant(client, "Broken")
    bad = overlay("Broken")
    bad["menu"] = {**bad["menu"], "items": [{**bad["menu"]["items"][0], "options": ["unicorn"]}]}
    env = envelope(client.post(f"{t.base}/rollouts", headers=t.auth, json={"overlay": bad}),
                   422, "blueprint.invalid")
    assert env.message.startswith("overlay.yaml: /menu: ")
    assert "unicorn" in env.message
    env = envelope(client.post(f"{t.base}/rollouts", headers=t.auth,
                               json={"menu": bad["menu"]}), 422, "blueprint.invalid")
    assert env.message.startswith("menu: /menu: ") and "unicorn" in env.message
    no_synonyms = {**bad["menu"], "items": [{**bad["menu"]["items"][0], "options": [],
                                             "synonyms": []}]}
    env = envelope(client.post(f"{t.base}/rollouts", headers=t.auth,
                               json={"menu": no_synonyms}), 422, "blueprint.invalid")
    assert env.message.startswith("menu: /menu/items/0/synonyms: "), env.message
    env = envelope(client.post(f"{t.base}/rollouts", headers=t.auth,
                               json={"overlay_yaml": "restaurant: [unclosed"}), 422,
                   "blueprint.invalid")
    assert env.message.startswith("overlay.yaml: /: not valid YAML")
    envelope(client.post(f"{t.base}/rollouts", headers=t.auth, json={"note": "empty"}), 422,
             "request.invalid")
    envelope(client.post(f"{t.base}/rollouts", headers=t.auth,
                         json={"overlay": overlay("x"), "sector": "spaceships"}), 422,
             "blueprint.invalid")
    assert client.get(f"{t.base}/rollouts", headers=t.auth).json() == []
    # Valid YAML text and a menu-only upload are accepted.
    ok = client.post(f"{t.base}/rollouts", headers=t.auth,
                     json={"overlay_yaml": yaml.safe_dump(overlay("From YAML"))})
    assert ok.status_code == 201, ok.text
    assert ok.json()["overlay"]["restaurant"] == "From YAML"
    menu_only = client.post(f"{t.base}/rollouts", headers=t.auth,
                            json={"menu": overlay("m")["menu"]})
    assert menu_only.status_code == 201 and menu_only.json()["overlay"] is None


def test_diff_and_one_call_rollback_to_an_earlier_version(client: TestClient) -> None:
    t = new_tenant(client, "Roll")
    enrol(client, t, "box1", "dev")
    v1 = approved_version(client, t, {"overlay": overlay("Roll v1")})
    promote(client, t, v1, "dev")
    v2 = approved_version(client, t, {"overlay": overlay("Roll v2")})
    promote(client, t, v2, "dev")
    assert _desired(client, t, "box1")["blueprint_overlay"]["restaurant"] == "Roll v2"
    changes = client.get(f"{t.base}/rollouts/{v1}/diff/{v2}", headers=t.auth).json()["changes"]
    assert changes == [{"path": "/overlay/restaurant", "op": "changed", "before": "Roll v1",
                        "after": "Roll v2"}]
    envelope(client.post(f"{t.base}/rollouts/{v1}/promote", headers=t.auth,
                         json={"stage": "dev"}), 409, "rollout.already_promoted")
    back = client.post(f"{t.base}/rollouts/rollback", headers=t.auth, json={"to_version": v1})
    assert back.status_code == 200, back.text
    v3 = back.json()["version"]
    assert (v3["version"], v3["rolled_back_from"], v3["state"]) == (3, v1, "approved")
    assert v3["promoted_to"] == ["dev"]
    assert [d["device_id"] for d in back.json()["published"]] == ["box1"]
    assert client.get(f"{t.base}/rollouts/{v1}/diff/3", headers=t.auth).json()["changes"] == []
    assert _desired(client, t, "box1")["blueprint_overlay"] == overlay("Roll v1")
    assert [s["live_version"] for s in client.get(f"{t.base}/stages",
                                                   headers=t.auth).json()] == [3, None, None]
    draft = client.post(f"{t.base}/rollouts", headers=t.auth,
                        json={"overlay": overlay("never approved")}).json()["version"]
    envelope(client.post(f"{t.base}/rollouts/rollback", headers=t.auth,
                         json={"to_version": draft}), 409, "rollout.not_approved")
    envelope(client.post(f"{t.base}/rollouts/rollback", headers=t.auth,
                         json={"to_version": 99}), 404, "rollout.not_found")
    audit = client.get(f"{t.base}/audit", headers=t.auth).json()
    rb = next(e for e in audit if e["action"] == "rollout.rollback")
    assert rb["before"] == {"live": {"dev": v2}, "to_version": v1}
    older = approved_version(client, t, {"overlay": overlay("older")})
    promote(client, t, approved_version(client, t, {"overlay": overlay("newer")}), "dev")
    envelope(client.post(f"{t.base}/rollouts/{older}/promote", headers=t.auth,
                         json={"stage": "dev"}), 409, "rollout.older_than_live")


def test_a_tenant_cannot_see_or_promote_another_tenants_drafts(client: TestClient) -> None:
    a, b = new_tenant(client, "A"), new_tenant(client, "B")
    enrol(client, b, "box1", "dev")
    vb = client.post(f"{b.base}/rollouts", headers=b.auth,
                     json={"overlay": overlay("B v1")}).json()["version"]
    client.post(f"{b.base}/rollouts/{vb}/submit", headers=b.auth)
    before = client.get(f"{b.base}/rollouts", headers=OPS_AUTH).json()
    attempts = [
        ("GET", "/rollouts", None), ("GET", f"/rollouts/{vb}", None),
        ("POST", "/rollouts", {"overlay": overlay("evil")}),
        ("POST", f"/rollouts/{vb}/approve", None),
        ("POST", f"/rollouts/{vb}/promote", {"stage": "dev"}),
        ("POST", "/rollouts/rollback", {"to_version": vb}),
        ("GET", f"/rollouts/{vb}/diff/{vb}", None), ("GET", f"/rollouts/{vb}/status", None),
        ("GET", "/stages", None), ("PUT", "/devices/box1/stage", {"stage": "prod"}),
        ("PUT", "/flags/answer_calls", {"value": False}),
        ("PUT", "/devices/box1/desired", {"flags": {"answer_calls": False}}),
        ("GET", "/devices/box1/desired", None), ("GET", "/desired", None),
    ]
    for method, path, body in attempts:
        r = client.request(method, b.base + path, headers=a.auth, json=body)
        envelope(r, 404, "tenant.not_found")
    envelope(client.post("/api/v1/reconcile", headers=a.auth), 403, "auth.scope")
    assert client.post("/api/v1/reconcile", headers=OPS_AUTH).status_code == 200
    assert client.get(f"{b.base}/rollouts", headers=OPS_AUTH).json() == before
    assert _cloud_db(client).desired_versions(b.tenant_id) == []
    approved = client.post(f"{b.base}/rollouts/{vb}/approve", headers=b.approver_auth)
    assert approved.status_code == 200 and approved.json()["approved_by"] != "bootstrap"


def test_a_raw_desired_state_put_bypasses_approval_so_only_ops_may_do_it(
        client: TestClient) -> None:
    t = new_tenant(client, "Raw Put")
    enrol(client, t, "box1", "prod")
    url = f"{t.base}/devices/box1/desired"
    envelope(client.put(url, headers=t.auth, json={"flags": {"answer_calls": False}}), 403,
             "auth.scope")
    envelope(client.get(url, headers=t.auth), 404, "device.no_desired_state")
    done = client.put(url, headers=OPS_AUTH, json={"flags": {"answer_calls": False}})
    assert done.status_code == 200, done.text
    assert _desired(client, t, "box1")["flags"] == {"answer_calls": False}
