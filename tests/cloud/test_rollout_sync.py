"""A promotion and a kill switch end to end: cloud API -> desired state -> retained
down/desired on real Mosquitto -> the box's sync link composes and applies it -> its
report -> the rollout status says applied. The control plane runs on both backends
(SQLite: the demo default, one file shared with ingest's tables)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.store import desired_state
from cloud.control.tenant_ca import make_device_csr
from tests.cloud.control_client import OPS_AUTH, TenantTokens, governed_cloud, overlay
from tests.integration.cloud_harness import wait_until
from tests.integration.test_sync_to_cloud import MOSQUITTO, Box, Cloud, new_box, running_sync


@pytest.fixture(name="box")
def box_fixture(tmp_path: Path) -> Iterator[Box]:
    with new_box(tmp_path) as b:
        yield b


@pytest.fixture(name="cloud")
def cloud_fixture(tmp_path: Path, box: Box, backend: str,
                  request: pytest.FixtureRequest) -> Iterator[Cloud]:
    db_url, role = None, "voxeron_app"
    if backend == "postgresql":
        pg = request.getfixturevalue("pg_server")
        db_url, role = pg.url, pg.app_role
    with governed_cloud(tmp_path, MOSQUITTO, box.identity.tenant_id, db_url, role) as c:
        yield c


def _tokens(cloud: Cloud, tenant_id: str) -> TenantTokens:
    secrets = [cloud.api.post(f"/api/v1/tenants/{tenant_id}/tokens", json={
        "name": who, "scopes": ["tenant:read", "tenant:write"]}).json()["secret"]
        for who in ("author", "approver")]
    return TenantTokens(tenant_id, *secrets)


def _in_force(box: Box) -> Any:
    with box.store.transaction() as conn:
        return desired_state.in_force(conn)


def test_promotion_and_kill_switch_reach_the_box_and_report_applied(
        box: Box, cloud: Cloud) -> None:
    ids = box.identity
    t = _tokens(cloud, ids.tenant_id)
    csr = make_device_csr(ids.tenant_id, ids.device_id).cert_pem.decode()
    enrolled = cloud.api.post(f"{t.base}/devices", json={"device_id": ids.device_id,
                                                         "csr_pem": csr})
    assert enrolled.status_code == 201, enrolled.text
    assert cloud.api.put(f"{t.base}/devices/{ids.device_id}/stage", headers=t.auth,
                         json={"stage": "dev"}).status_code == 200
    v = cloud.api.post(f"{t.base}/rollouts", headers=t.auth,
                       json={"overlay": overlay("Tony's rollout")}).json()["version"]
    cloud.api.post(f"{t.base}/rollouts/{v}/submit", headers=t.auth)
    assert cloud.api.post(f"{t.base}/rollouts/{v}/approve",
                          headers=t.approver_auth).status_code == 200
    promoted = cloud.api.post(f"{t.base}/rollouts/{v}/promote", headers=t.auth,
                              json={"stage": "dev"})
    assert promoted.status_code == 200, promoted.text
    status_url = f"{t.base}/rollouts/{v}/status"

    def device_state() -> str:
        [device] = cloud.api.get(status_url, headers=t.auth).json()["devices"]
        return str(device["state"])

    assert device_state() == "pending"
    with running_sync(box, MOSQUITTO, report_interval_s=0.5):
        wait_until(lambda: device_state() == "applied", what="rollout reported applied")
        applied = _in_force(box)
        assert applied.desired.blueprint_overlay["restaurant"] == "Tony's rollout"
        assert applied.desired.answer_calls is True
        off = cloud.api.put(f"{t.base}/flags/answer_calls", headers=t.auth, json={"value": False})
        assert [d["device_id"] for d in off.json()["published"]] == [ids.device_id]
        wait_until(lambda: _in_force(box).desired.answer_calls is False,
                   what="kill switch in force on the box")
        wait_until(lambda: device_state() == "applied", what="flag version reported applied")
    in_force = _in_force(box).desired
    assert in_force.blueprint_overlay["restaurant"] == "Tony's rollout"  # kept with the flag
    status = cloud.api.get(status_url, headers=t.auth).json()
    assert status["applied"] == 1 and status["devices"][0]["applied_version"] == in_force.version
    page = cloud.api.get(f"/dashboard/rollouts/{ids.tenant_id}", headers=OPS_AUTH)
    assert page.status_code == 200 and ids.device_id in page.text and "applied" in page.text
